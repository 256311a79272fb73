--- @script concurrency_acquire
--- @version 1
--- @summary Concurrency limit: takes one of at most `limit` in-flight leases. A lease lasts `period_ms` unless released (or renewed by acquiring the same lease id again), so a crashed holder cannot leak it.
--- @key leases Sorted set of lease ids scored by the ms time each lease expires. Absent means none.
--- @arg limit int required 1..1000000 Leases that may be held at once.
--- @arg period_ms int required 1..31622400000 Lease lifetime in ms if not released.
--- @arg lease_id string required maxlen=128 Caller-chosen unique id (e.g. a UUID); the same id again renews the lease.
--- @arg now_ms int optional 0..140737488355328 Clock override in ms; Redis TIME when omitted.
--- @return allowed bool 1 if the lease is held.
--- @return remaining int Leases still free after this call.
--- @return reset_after_ms int ms until every lease now held has expired (the key's TTL).
--- @return retry_after_ms int 0 when allowed; else ms until the oldest lease expires (sooner if released).
--- @include "lib/algo_concurrency"
--- @args

local now = rl_now_ms(now_ms)
local live = rl_concurrency_live(KEYS[1], now, true)
local held = redis.call('ZSCORE', KEYS[1], lease_id)
if not held and live >= limit then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return rl_reply({ 0, 0, rl_concurrency_reset(KEYS[1], now), tonumber(first[2]) - now })
end
redis.call('ZADD', KEYS[1], string.format('%d', now + period_ms), lease_id)
if not held then live = live + 1 end
return rl_reply({ 1, math.max(limit - live, 0), rl_concurrency_expire(KEYS[1], now, now_ms ~= nil), 0 })
