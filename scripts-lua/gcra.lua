--- @script gcra
--- @version 1
--- @summary Generic cell rate algorithm: a fresh key admits `burst` units at once, then refills continuously at `limit` per `period_ms`. State is one string; decisions are identical to token_bucket.
--- @key state GCRA state: the theoretical arrival time as "ms:num" (num in 1/limit ms). Absent means full.
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
--- @include "lib/algo_gcra"
--- @include "lib/clock"
--- @args

local allowed, remaining, reset, retry = rl_gcra_eval(KEYS[1], limit, period_ms, burst, cost, rl_now_ms(now_ms), now_ms ~= nil, true)
return rl_reply({ allowed, remaining, reset, retry })
