--- @script concurrency_acquire
--- @version 2
--- @summary Concurrency limit: takes one of at most `limit` in-flight leases. A lease lasts `period_ms` unless released (or renewed by acquiring the same lease id again), so a crashed holder cannot leak it. v2: optional trailing share_ppm (priority classes); the same ARGV as v1 otherwise.
--- @key leases Sorted set of lease ids scored by the ms time each lease expires. Absent means none.
--- @arg limit int required 1..1000000 Leases that may be held at once.
--- @arg period_ms int required 1..31622400000 Lease lifetime in ms if not released.
--- @arg lease_id string required maxlen=128 Caller-chosen unique id (e.g. a UUID); the same id again renews the lease.
--- @arg now_ms int optional 0..140737488355328 Clock override in ms; Redis TIME when omitted.
--- @arg share_ppm int default=1000000 0..1000000 Priority class: the share of `limit` (parts per million) this call may use. A new lease is taken only if at least limit - floor(limit * share_ppm / 1e6) leases stay free after it; 1000000 (the default) keeps none back. A renewal (a lease id still live) is always admitted: it takes no new lease.
--- @return allowed bool 1 if the lease is held.
--- @return remaining int Leases still free after this call.
--- @return reset_after_ms int ms until every lease now held has expired (the key's TTL).
--- @return retry_after_ms int 0 when allowed; else ms until enough leases expire for this class (sooner if released); -1 when the class can never take one (its share of limit is 0).
--- @include "lib/algo_concurrency"
--- @include "lib/priority"
--- @args

local allowed, remaining, reset, retry, writes = rl_concurrency_eval(KEYS[1], limit, period_ms, lease_id, 1, rl_now_ms(now_ms), now_ms ~= nil, true, rl_keep(limit, share_ppm))
if allowed == 1 then rl_apply(writes) end
return rl_reply({ allowed, remaining, reset, retry })
