--- @script concurrency_release
--- @version 1
--- @summary Releases a lease. Releasing twice, an expired lease or an unknown id is harmless and reported (released = 0).
--- @key leases Sorted set of lease ids scored by the ms time each lease expires. Absent means none.
--- @arg lease_id string required maxlen=128 The id given to concurrency_acquire.
--- @arg now_ms int optional 0..140737488355328 Clock override in ms; Redis TIME when omitted.
--- @return released bool 1 if this call freed a live lease.
--- @return in_flight int Live leases after this call.
--- @include "lib/algo_concurrency"
--- @args

local now = rl_now_ms(now_ms)
local score = redis.call('ZSCORE', KEYS[1], lease_id)
local released = 0
if score then
  redis.call('ZREM', KEYS[1], lease_id)
  if tonumber(score) > now then released = 1 end
end
local live = rl_concurrency_live(KEYS[1], now, true)
rl_concurrency_expire(KEYS[1], now, now_ms ~= nil)
return rl_reply({ released, live })
