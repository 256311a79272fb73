--- A count that belongs to one window, expiring exactly at the window's end. Two forms, both read:
---   "window_start_ms:count" (quota; every counter on a caller's clock, now_ms, where TTLs carry
---     grace; all of v2): the window start in the value means a key that outlives its window can
---     never carry a count into the next one.
---   the integer count * 2^22 + window_start_ms mod 2^22 (fixed_window v3 on the server clock,
---     count below 2^31, a period that is not a multiple of 2^22 ms): Redis keeps it
---     int-encoded, in the object itself (no string allocation). The key expires at its window's
---     end (PXAT), so a key still there holds this window's count, or for an instant the previous
---     window's (the script's TIME past the end while expiry is judged at the script's start
---     time): their starts differ by the period, so their tags differ. A key left by other
---     parameters (period_ms or offset_ms changed) is read as this window's only if its start is
---     this window's start plus a nonzero multiple of 2^22 ms (70 min): v2 read it as this
---     window's only if the starts were equal.
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

--- fixed_window's tag for the window starting at `start`: start mod 2^22. The packed form is
--- count * 2^22 + tag, count below 2^31 (so below 2^53); 4194304 (2^22) and 2147483648 (2^31)
--- are written out where they are used (a constant is cheaper than an upvalue per decision).
local function rl_counter_tag(start)
  return start % 4194304
end

--- Count stored for the window starting at `start` (0 for any other window or no key). `tag`:
--- the window's tag when the packed form may be stored (fixed_window), nil when not (quota).
--- `stored`: the state already read (a string, or false for none: lib/tiers); nil reads the key.
local function rl_counter_read(script, key, start, tag, stored)
  if stored == nil then stored = rl_call('GET', key) end
  if not stored then return 0 end
  -- Only fixed_window (a tag) may store the packed integer: quota's "start:count" is not parsed
  -- as a number first (a failed tonumber runs strtod over the whole string).
  local packed = tag and rl_tonumber(stored)
  if packed and packed >= 0 then
    local t = packed % 4194304
    if t ~= tag then return 0 end
    return (packed - t) / 4194304
  end
  local s, c = string.match(stored, '^(%-?%d+):(%d+)$') -- a window may start before the epoch (a caller's clock near 0)
  if not s then rl_fail_state(script, key) end
  if tonumber(s) ~= start then return 0 end
  return tonumber(c)
end

--- The last expiry time and value written, and their strings (a pure memo of string.format, as
--- gcra's: every key of a window expires at its end).
local rl_counter_memo_at = -1
local rl_counter_memo_at_s = ''
local rl_counter_memo_start = -1
local rl_counter_memo_used = -1
local rl_counter_memo_value = ''

--- The write storing `used` for the window [start, window_end), expiring exactly at its end, flat
--- (SET key value opt at, or DEL key when used is 0): the packed integer when there is a tag, the
--- server clock keeps time, used < 2^31 and the period is not a multiple of 2^22 ms (else the
--- previous window would have the same tag), else "start:used".
local function rl_counter_write(key, start, window_end, used, now, simulated, tag)
  if used <= 0 then return 'DEL', key end
  local set_opt, at = 'PXAT', window_end
  if simulated then set_opt, at = 'PX', window_end - now + RL_SIMULATED_GRACE_MS end
  if at ~= rl_counter_memo_at then rl_counter_memo_at, rl_counter_memo_at_s = at, rl_format('%d', at) end
  if tag and not simulated and not rl_plain_forms and used < 2147483648 and (window_end - start) % 4194304 ~= 0 then
    return 'SET', key, rl_format('%d', used * 4194304 + tag), set_opt, rl_counter_memo_at_s
  end
  if start ~= rl_counter_memo_start or used ~= rl_counter_memo_used then
    rl_counter_memo_start, rl_counter_memo_used, rl_counter_memo_value = start, used, rl_format('%d:%d', start, used)
  end
  return 'SET', key, rl_counter_memo_value, set_opt, rl_counter_memo_at_s
end

--- The same as a list of writes, for callers that apply them later (or never).
local function rl_counter_writes(key, start, window_end, used, now, simulated, tag)
  return { { rl_counter_write(key, start, window_end, used, now, simulated, tag) } }
end

--- The decision of a counter in [start, window_end): allowed, remaining, reset, retry, then the
--- write to apply if admitted, flat (rl_counter_write's values; none when nothing is written).
--- `keep` (lib/priority, nil = 0): units that must be left after the call; decided at cost + keep.
--- `tag` as rl_counter_write's.
local function rl_counter_take(key, limit, start, window_end, used, cost, now, simulated, keep, tag)
  local need = cost
  if keep then need = cost + keep end
  if need <= limit and used + need <= limit then
    if cost > 0 then
      return 1, limit - used - cost, window_end - now, 0, rl_counter_write(key, start, window_end, used + cost, now, simulated, tag)
    end
    if used > 0 then return 1, limit - used, window_end - now, 0 end
    return 1, limit - used, 0, 0
  end
  local reset = 0
  if used > 0 then reset = window_end - now end
  if need > limit then return 0, limit - used, reset, -1 end
  return 0, limit - used, reset, window_end - now
end
