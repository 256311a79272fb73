--- Sliding window (two counters): the count of the current window plus the previous window's
--- count weighted by how much of it the rolling window still covers. State "start:cur:prev".
--- Windows are aligned to the epoch. Exact rational comparison; no float weights.
--- @include "lib/counter"

--- Counts (cur, prev) for the window starting at `start`.
local function rl_sliding_window_read(key, start, period_ms)
  local stored = redis.call('GET', key)
  if not stored then return 0, 0 end
  local s, c, p = string.match(stored, '^(%d+):(%d+):(%d+)$')
  if not s then rl_fail_state('sliding_window', key) end
  s = tonumber(s)
  if s == start then return tonumber(c), tonumber(p) end
  if s == start - period_ms then return 0, tonumber(c) end
  return 0, 0
end

--- ms until the state is empty again.
local function rl_sliding_window_reset(start, period_ms, cur, prev, now)
  if cur > 0 then return start + 2 * period_ms - now end
  if prev > 0 then return start + period_ms - now end
  return 0
end

local function rl_sliding_window_writes(key, start, period_ms, cur, prev, now, simulated)
  local reset = rl_sliding_window_reset(start, period_ms, cur, prev, now)
  if reset == 0 then return { { 'DEL', key } } end
  local set_opt, _, at = rl_expiry(now, reset, simulated)
  return { { 'SET', key, string.format('%d:%d:%d', start, cur, prev), set_opt, at } }
end

--- Earliest ms into a window at which prev * (period - e) / period <= room (prev > 0, room >= 0).
local function rl_sliding_window_when(prev, room, period_ms)
  local q = rl_muldivmod(room, period_ms, prev)
  return math.max(period_ms - q, 0)
end

--- `keep` (lib/priority, nil = 0): units that must be left after the call; decided at cost + keep.
local function rl_sliding_window_eval(key, limit, period_ms, cost, now, simulated, keep)
  local start = rl_window_start(now, period_ms, 0)
  local elapsed = now - start
  local cur, prev = rl_sliding_window_read(key, start, period_ms)
  -- weighted previous count = prev * (period - elapsed) / period = wq + wr / period
  local wq, wr = rl_muldivmod(prev, period_ms - elapsed, period_ms)
  local used = wq
  if wr > 0 then used = used + 1 end
  local room = limit - cur - used -- whole units left: floor(limit - cur - weighted)
  local reset = rl_sliding_window_reset(start, period_ms, cur, prev, now)
  local need = cost
  if keep then need = cost + keep end
  if need > limit then return 0, math.max(room, 0), reset, -1, {} end
  if need <= room then
    if cost == 0 then return 1, room, reset, 0, {} end
    cur = cur + cost
    return 1, room - cost, rl_sliding_window_reset(start, period_ms, cur, prev, now), 0,
      rl_sliding_window_writes(key, start, period_ms, cur, prev, now, simulated)
  end
  local retry
  if cur + need <= limit then
    -- Later in this window the previous window's weight falls far enough.
    retry = rl_sliding_window_when(prev, limit - cur - need, period_ms) - elapsed
  else
    -- Not before the next window, where prev' = cur and cur' = 0.
    retry = period_ms - elapsed + rl_sliding_window_when(cur, limit - need, period_ms)
  end
  return 0, math.max(room, 0), reset, retry, {}
end

local function rl_sliding_window_refund(key, limit, period_ms, cost, now, simulated)
  local start = rl_window_start(now, period_ms, 0)
  local cur, prev = rl_sliding_window_read(key, start, period_ms)
  cur = math.max(cur - cost, 0)
  local wq, wr = rl_muldivmod(prev, period_ms - (now - start), period_ms)
  if wr > 0 then wq = wq + 1 end
  return math.max(limit - cur - wq, 0), rl_sliding_window_reset(start, period_ms, cur, prev, now),
    rl_sliding_window_writes(key, start, period_ms, cur, prev, now, simulated)
end
