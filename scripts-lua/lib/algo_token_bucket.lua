--- Token bucket over the shared bucket: the state is a hash { tokens, frac, ts_ms }, readable
--- with HGETALL. A clock that steps back refills nothing (content is kept as counted).
--- @include "lib/bucket"
--- @include "lib/clock"

--- Content at `now` (whole, frac) and the time it was counted at.
local function rl_token_bucket_read(key, limit, period_ms, burst, now)
  local stored = redis.call('HMGET', key, 'tokens', 'frac', 'ts_ms')
  if not stored[1] then return burst, 0, now end
  local ts_ms = tonumber(stored[3])
  local whole, frac = rl_refill(tonumber(stored[1]), tonumber(stored[2]), now - ts_ms, burst, limit, period_ms)
  if ts_ms > now then return whole, frac, ts_ms end
  return whole, frac, now
end

local function rl_token_bucket_writes(key, whole, frac, ts, limit, period_ms, burst, now, simulated)
  local reset = rl_ms_until(burst, whole, frac, limit, period_ms)
  if reset == 0 then return { { 'DEL', key } } end
  -- Refill runs from ts (later than now only if the clock stepped back).
  local _, expire_cmd, at = rl_expiry(now, reset + ts - now, simulated)
  return {
    { 'HSET', key, 'tokens', string.format('%d', whole), 'frac', string.format('%d', frac), 'ts_ms', string.format('%d', ts) },
    { expire_cmd, key, at },
  }
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
