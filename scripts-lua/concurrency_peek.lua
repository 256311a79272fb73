--- @script concurrency_peek
--- @version 1
--- @summary Read-only: live leases on a concurrency key. Runs with EVALSHA_RO and on replicas.
--- @readonly
--- @key leases Sorted set of lease ids scored by the ms time each lease expires. Absent means none.
--- @arg limit int required 1..1000000 Leases that may be held at once.
--- @arg now_ms int optional 0..140737488355328 Clock override in ms; Redis TIME when omitted.
--- @return allowed bool 1 if a lease could be taken now.
--- @return remaining int Leases free now.
--- @return reset_after_ms int ms until every lease now held has expired.
--- @return in_flight int Live leases now.
--- @include "lib/algo_concurrency"
--- @args

local now = rl_now_ms(now_ms)
local live = rl_concurrency_live(KEYS[1], now, false)
local allowed = 0
if live < limit then allowed = 1 end
return rl_reply({ allowed, math.max(limit - live, 0), rl_concurrency_reset(KEYS[1], now), live })
