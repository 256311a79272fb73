--- @script token_bucket
--- @version 1
--- @summary Token bucket: a fresh key admits `burst` units at once, then refills continuously at `limit` per `period_ms`. State is an inspectable hash; decisions are identical to gcra.
--- @key state Hash with fields tokens (whole units), frac (extra units in 1/period_ms) and ts_ms (when they were counted). Absent means full.
--- @arg limit int required 1..1000000000 Units refilled per period.
--- @arg period_ms int required 1..31622400000 Refill period in ms (at most 366 days).
--- @arg burst int default=limit 1..1000000000 Capacity: units a fresh key admits at once.
--- @arg cost int default=1 0..1000000000 Units this call takes; 0 is a peek that never writes.
--- @arg now_ms int optional 0..140737488355328 Clock override in ms; Redis TIME when omitted.
--- @check refill_bounded limit period_ms burst
--- @return allowed bool 1 if the cost was admitted and taken.
--- @return remaining int Whole units left after this call.
--- @return reset_after_ms int ms until the key is back to full (and expires).
--- @return retry_after_ms int 0 when allowed; ms until this cost would be admitted; -1 when cost > burst (never).
--- @include "lib/bucket"
--- @include "lib/clock"
--- @args

local now = rl_now_ms(now_ms)

local whole, frac = burst, 0
local stored = redis.call('HMGET', KEYS[1], 'tokens', 'frac', 'ts_ms')
if stored[1] then
  local ts_ms = tonumber(stored[3])
  -- A clock that steps back refills nothing; the content is kept as counted.
  whole, frac = rl_refill(tonumber(stored[1]), tonumber(stored[2]), now - ts_ms, burst, limit, period_ms)
  if ts_ms > now then now = ts_ms end
end

local allowed, remaining, retry_after_ms = rl_take(whole, frac, burst, cost, limit, period_ms)
local reset_after_ms = rl_ms_until(burst, remaining, frac, limit, period_ms)

if allowed == 1 and cost > 0 then
  redis.call('HSET', KEYS[1], 'tokens', string.format('%d', remaining), 'frac', string.format('%d', frac), 'ts_ms', string.format('%d', now))
  redis.call('PEXPIRE', KEYS[1], reset_after_ms)
end
return { allowed, remaining, reset_after_ms, retry_after_ms }
