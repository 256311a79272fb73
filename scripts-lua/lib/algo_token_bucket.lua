--- Token bucket over the shared bucket: the content (tokens whole + frac / period_ms units) and
--- the time ts_ms it was counted at. A clock that steps back refills nothing (content is kept as
--- counted). State (v3): one string value, one SET:
---   the negative integer -(ts_ms * 1000 + tokens), when frac is 0, 0 <= tokens < 1000, ts_ms <
---     9007199254740 (the year 2255) and not both 0: Redis keeps it int-encoded (no string
---     allocation). A fresh key's first take is always this form; a refill that leaves no
---     fraction of a unit too. Negative so that no other algorithm's integer (gcra's, the
---     windows', all >= 0) reads as a token bucket, nor a token bucket's as theirs (WRONGSTATE).
---   "tokens,frac,ts_ms" otherwise (tokens negative in debt); commas, so that no window state
---     ("start:cur:prev") reads as a token bucket, nor a token bucket as one.
--- v2 kept a hash { tokens, frac, ts_ms }: it is still read (GET answers WRONGTYPE), and the next
--- write replaces it.
--- @include "lib/bucket"
--- @include "lib/clock"

local RL_TB_RADIX = 1000
local RL_TB_MAX_PACKED_MS = 9007199254739

--- Content at `now` (whole, frac) and the time it was counted at.
local function rl_token_bucket_read(key, limit, period_ms, burst, now)
  local stored = redis.pcall('GET', key)
  if not stored then return burst, 0, now end
  local whole, frac, ts_ms
  local packed = tonumber(stored)
  if packed and packed < 0 then
    packed = -packed
    whole = packed % RL_TB_RADIX
    frac = 0
    ts_ms = (packed - whole) / RL_TB_RADIX
  elseif type(stored) == 'string' then
    whole, frac, ts_ms = string.match(stored, '^(%-?%d+),(%d+),(%d+)$')
    if not whole then rl_fail_state('token_bucket', key) end
    whole, frac, ts_ms = tonumber(whole), tonumber(frac), tonumber(ts_ms)
  else
    -- v2's hash (GET's WRONGTYPE error is a table with err).
    stored = redis.call('HMGET', key, 'tokens', 'frac', 'ts_ms')
    if not stored[1] then return burst, 0, now end
    whole, frac, ts_ms = tonumber(stored[1]), tonumber(stored[2]), tonumber(stored[3])
  end
  whole, frac = rl_refill(whole, frac, now - ts_ms, burst, limit, period_ms)
  if ts_ms > now then return whole, frac, ts_ms end
  return whole, frac, now
end

local function rl_token_bucket_writes(key, whole, frac, ts, limit, period_ms, burst, now, simulated)
  local reset = rl_ms_until(burst, whole, frac, limit, period_ms)
  if reset == 0 then return { { 'DEL', key } } end
  -- Refill runs from ts (later than now only if the clock stepped back).
  local set_opt, _, at = rl_expiry(now, reset + ts - now, simulated)
  if frac == 0 and whole >= 0 and whole < RL_TB_RADIX and ts <= RL_TB_MAX_PACKED_MS and ts + whole > 0 then
    return { { 'SET', key, string.format('-%d', ts * RL_TB_RADIX + whole), set_opt, at } }
  end
  return { { 'SET', key, string.format('%d,%d,%d', whole, frac, ts), set_opt, at } }
end

--- `keep` (lib/priority, nil = 0): units that must be left after the call; decided at cost + keep.
local function rl_token_bucket_eval(key, limit, period_ms, burst, cost, now, simulated, keep)
  local whole, frac, ts = rl_token_bucket_read(key, limit, period_ms, burst, now)
  keep = keep or 0
  local allowed, remaining, retry = rl_take(whole, frac, burst, cost + keep, limit, period_ms)
  if allowed == 1 then remaining = remaining + keep end
  local reset = rl_ms_until(burst, remaining, frac, limit, period_ms)
  local writes = {}
  if allowed == 1 and cost > 0 then
    writes = rl_token_bucket_writes(key, remaining, frac, ts, limit, period_ms, burst, now, simulated)
  end
  return allowed, remaining, reset, retry, writes
end

local function rl_token_bucket_refund(key, limit, period_ms, burst, cost, now, simulated)
  local whole, frac, ts = rl_token_bucket_read(key, limit, period_ms, burst, now)
  whole, frac = rl_give(whole, frac, burst, cost)
  return whole, rl_ms_until(burst, whole, frac, limit, period_ms),
    rl_token_bucket_writes(key, whole, frac, ts, limit, period_ms, burst, now, simulated)
end
