--- Sliding window (two counters): the count of the current window plus the previous window's
--- count weighted by how much of it the rolling window still covers. Windows are aligned to the
--- epoch. Exact rational comparison; no float weights.
--- State (v3), two forms, both read:
---   the integer (cur * 2^16 + prev) * 2^21 + window_start_ms mod 2^21, on the server clock while
---     cur and prev are below 2^16 and neither the period nor twice it is a multiple of 2^21 ms:
---     below 2^53, and Redis keeps it int-encoded (no string allocation). The key expires at the
---     end of the window after its own (its own when cur is 0), so a key still there belongs to
---     this window or the previous one, or for an instant (the script's TIME past a window's end
---     while expiry is judged at the script's start) the one before: their starts differ by
---     multiples of the period below 3 periods, so their tags differ. A key left by another
---     period is misread only if its start is off this window's (or the previous one's) by a
---     nonzero multiple of 2^21 ms (35 min).
---   "start:cur:prev" (larger counts, or a caller's clock, now_ms, where TTLs carry grace; v2).
--- @include "lib/counter"

local RL_SW_TAGS = 2097152 -- 2^21
local RL_SW_COUNTS = 65536 -- 2^16

--- Counts (cur, prev) for the window starting at `start`. `stored`: the state already read (a
--- string, or false for none: lib/tiers); nil reads the key.
local function rl_sliding_window_read(key, start, period_ms, stored)
  if stored == nil then stored = rl_call('GET', key) end
  if not stored then return 0, 0 end
  local packed = rl_tonumber(stored)
  if packed and packed >= 0 then
    local t = packed % RL_SW_TAGS
    local pair = (packed - t) / RL_SW_TAGS
    local p = pair % RL_SW_COUNTS
    if t == start % RL_SW_TAGS then return (pair - p) / RL_SW_COUNTS, p end
    if t == (start - period_ms) % RL_SW_TAGS then return 0, (pair - p) / RL_SW_COUNTS end
    return 0, 0
  end
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

--- The last expiry time and packed value written, and their strings (a pure memo of
--- string.format, as gcra's: every key of a window expires at the same time).
local rl_sw_memo_at = -1
local rl_sw_memo_at_s = ''
local rl_sw_memo_packed = -1
local rl_sw_memo_value = ''

--- The write storing (cur, prev) for the window starting at `start`, flat: SET key value opt at,
--- or DEL key when empty.
local function rl_sliding_window_write(key, start, period_ms, cur, prev, now, simulated)
  local reset = rl_sliding_window_reset(start, period_ms, cur, prev, now)
  if reset == 0 then return 'DEL', key end
  local set_opt, at = 'PXAT', now + reset
  if simulated then set_opt, at = 'PX', reset + RL_SIMULATED_GRACE_MS end
  if at ~= rl_sw_memo_at then rl_sw_memo_at, rl_sw_memo_at_s = at, rl_format('%d', at) end
  if not simulated and not rl_plain_forms and cur < RL_SW_COUNTS and prev < RL_SW_COUNTS and period_ms % RL_SW_TAGS ~= 0 and (2 * period_ms) % RL_SW_TAGS ~= 0 then
    local packed = (cur * RL_SW_COUNTS + prev) * RL_SW_TAGS + start % RL_SW_TAGS
    if packed ~= rl_sw_memo_packed then rl_sw_memo_packed, rl_sw_memo_value = packed, rl_format('%d', packed) end
    return 'SET', key, rl_sw_memo_value, set_opt, rl_sw_memo_at_s
  end
  return 'SET', key, rl_format('%d:%d:%d', start, cur, prev), set_opt, rl_sw_memo_at_s
end

local function rl_sliding_window_writes(key, start, period_ms, cur, prev, now, simulated)
  return { { rl_sliding_window_write(key, start, period_ms, cur, prev, now, simulated) } }
end

--- Earliest ms into a window at which prev * (period - e) / period <= room (prev > 0, room >= 0).
local function rl_sliding_window_when(prev, room, period_ms)
  local q = rl_muldivmod(room, period_ms, prev)
  return math.max(period_ms - q, 0)
end

--- The decision in the window starting at `start` (rl_window_start(now, period_ms, 0): a caller
--- deciding many keys at one `now` computes it once): allowed, remaining, reset_after_ms,
--- retry_after_ms, then the write to apply if admitted, flat (rl_sliding_window_write's values;
--- none when nothing is written). `keep` (lib/priority, nil = 0): units that must be left after
--- the call; decided at cost + keep.
local function rl_sliding_window_decide(key, limit, period_ms, start, cost, now, simulated, keep, stored)
  local elapsed = now - start
  local cur, prev = rl_sliding_window_read(key, start, period_ms, stored)
  -- weighted previous count = prev * (period - elapsed) / period = wq + wr / period
  local used = 0
  if prev > 0 then
    local wq, wr = rl_muldivmod(prev, period_ms - elapsed, period_ms)
    used = wq
    if wr > 0 then used = used + 1 end
  end
  local room = limit - cur - used -- whole units left: floor(limit - cur - weighted)
  local need = cost
  if keep then need = cost + keep end
  if need <= room and need <= limit then
    if cost == 0 then return 1, room, rl_sliding_window_reset(start, period_ms, cur, prev, now), 0 end
    cur = cur + cost
    return 1, room - cost, rl_sliding_window_reset(start, period_ms, cur, prev, now), 0,
      rl_sliding_window_write(key, start, period_ms, cur, prev, now, simulated)
  end
  local reset = rl_sliding_window_reset(start, period_ms, cur, prev, now)
  if need > limit then return 0, math.max(room, 0), reset, -1 end
  local retry
  if cur + need <= limit then
    -- Later in this window the previous window's weight falls far enough.
    retry = rl_sliding_window_when(prev, limit - cur - need, period_ms) - elapsed
  else
    -- Not before the next window, where prev' = cur and cur' = 0.
    retry = period_ms - elapsed + rl_sliding_window_when(cur, limit - need, period_ms)
  end
  return 0, math.max(room, 0), reset, retry
end

--- rl_sliding_window_decide at `now`'s window.
local function rl_sliding_window_eval(key, limit, period_ms, cost, now, simulated, keep, stored)
  return rl_sliding_window_decide(key, limit, period_ms, rl_window_start(now, period_ms, 0), cost, now, simulated, keep, stored)
end

local function rl_sliding_window_refund(key, limit, period_ms, cost, now, simulated, stored)
  local start = rl_window_start(now, period_ms, 0)
  local cur, prev = rl_sliding_window_read(key, start, period_ms, stored)
  cur = math.max(cur - cost, 0)
  local wq, wr = rl_muldivmod(prev, period_ms - (now - start), period_ms)
  if wr > 0 then wq = wq + 1 end
  return math.max(limit - cur - wq, 0), rl_sliding_window_reset(start, period_ms, cur, prev, now),
    rl_sliding_window_writes(key, start, period_ms, cur, prev, now, simulated)
end
