--- @script concurrency_peek
--- @version 2
--- @summary Read-only: live leases on a concurrency key. Runs with EVALSHA_RO and on replicas. v2: optional trailing share_ppm; the same ARGV as v1 otherwise.
--- @readonly
--- @key leases Sorted set of lease ids scored by the ms time each lease expires. Absent means none.
--- @arg limit int required 1..1000000 Leases that may be held at once.
--- @arg now_ms int optional 0..140737488355328 Clock override in ms; Redis TIME when omitted.
--- @arg share_ppm int default=1000000 0..1000000 Priority class (see concurrency_acquire): allowed says whether a call of this class could take a new lease now.
--- @return allowed bool 1 if a new lease could be taken now (by this class).
--- @return remaining int Leases free now.
--- @return reset_after_ms int ms until every lease now held has expired.
--- @return in_flight int Live leases now.
--- @include "lib/algo_concurrency"
--- @include "lib/priority"
--- @args

local now = rl_now_ms(now_ms)
local live = rl_concurrency_live(KEYS[1], now, false)
local allowed = 0
if live + 1 + rl_keep(limit, share_ppm) <= limit then allowed = 1 end
return rl_reply({ allowed, math.max(limit - live, 0), rl_concurrency_reset(KEYS[1], now), live })
