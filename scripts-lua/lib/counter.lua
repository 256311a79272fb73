--- A count that belongs to one window, stored as "window_start_ms:count". Keeping the window
--- start in the value (not only in the TTL) means a key that outlives its window, or a caller
--- clock (now_ms), can never carry a count into the next window.
--- @include "lib/args"
--- @include "lib/exact"
--- @include "lib/clock"

local function rl_check_offset_within_period(script, period_ms, offset_ms)
  if offset_ms >= period_ms then
    rl_fail(script, string.format('offset_ms must be less than period_ms (%d), got %d', period_ms, offset_ms))
  end
end

--- Start of the window of `period_ms` containing `now`, windows starting at offset_ms + k*period_ms.
local function rl_window_start(now, period_ms, offset_ms)
  local _, into = rl_divmod(now - offset_ms, period_ms)
  return now - into
end

--- Count stored for the window starting at `start` (0 for any other window or no key).
local function rl_counter_read(script, key, start)
  local stored = redis.call('GET', key)
  if not stored then return 0 end
  local s, c = string.match(stored, '^(%d+):(%d+)$')
  if not s then rl_fail_state(script, key) end
  if tonumber(s) ~= start then return 0 end
  return tonumber(c)
end

--- Writes storing `used` for the window [start, window_end), expiring exactly at its end.
local function rl_counter_writes(key, start, window_end, used, now, simulated)
  if used <= 0 then return { { 'DEL', key } } end
  local set_opt, _, at = rl_expiry(now, window_end - now, simulated)
  return { { 'SET', key, string.format('%d:%d', start, used), set_opt, at } }
end

--- The decision of a counter in [start, window_end): allowed, remaining, reset, retry, writes.
--- `keep` (lib/priority, nil = 0): units that must be left after the call; decided at cost + keep.
local function rl_counter_take(key, limit, start, window_end, used, cost, now, simulated, keep)
  local reset = 0
  if used > 0 then reset = window_end - now end
  local need = cost
  if keep then need = cost + keep end
  if need > limit then return 0, limit - used, reset, -1, {} end
  if used + need > limit then return 0, limit - used, reset, window_end - now, {} end
  if cost == 0 then return 1, limit - used, reset, 0, {} end
  return 1, limit - used - cost, window_end - now, 0, rl_counter_writes(key, start, window_end, used + cost, now, simulated)
end
