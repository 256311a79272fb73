--- @script token_bucket
--- @version 1
--- @summary Token bucket: a fresh key admits `burst` units at once, then refills continuously at `limit` per `period_ms`. State is an inspectable hash; decisions are identical to gcra.
--- @key state Hash with fields tokens (whole units, negative never), frac (extra units in 1/period_ms) and ts_ms (when they were counted). Absent means full.
--- @arg limit int required 1..1000000000 Units refilled per period.
--- @arg period_ms int required 1..31622400000 Refill period in ms (at most 366 days).
--- @arg burst int default=limit 1..1000000000 Capacity: units a fresh key admits at once.
--- @arg cost int default=1 0..1000000000 Units this call takes; 0 is a peek that never writes.
--- @arg now_ms int optional 0..140737488355328 Clock override in ms; Redis TIME when omitted.
--- @check refill_bounded limit period_ms burst
--- @return allowed bool 1 if the cost was admitted and taken.
--- @return remaining int Whole units left after this call.
--- @return reset_after_ms int ms until the key is back to full (and expires).
--- @return retry_after_ms int 0 when allowed; ms until this cost would be admitted; -1 when cost > the limit or burst (never).
--- @include "lib/algo_token_bucket"
--- @include "lib/clock"
--- @args

local allowed, remaining, reset, retry, writes = rl_token_bucket_eval(KEYS[1], limit, period_ms, burst, cost, rl_now_ms(now_ms), now_ms ~= nil)
if allowed == 1 then rl_apply(writes) end
return rl_reply({ allowed, remaining, reset, retry })
