--- @script gcra_refund
--- @version 2
--- @summary Gives units back to a gcra key (a call that was admitted but not used), never above burst. v2: stores the tat as one integer, ms * 10^6 + num (ms then num in six digits), int-encoded when the tat's fraction num < 1e6, i.e. every limit up to 1e6 (Redis int-encodes it: about 30% fewer bytes per key), else "ms:num" as before; reads v1 state (an upgrade under traffic loses nothing).
--- @key state GCRA state: the theoretical arrival time (tat), ms + num / limit ms: the integer ms * 10^6 + num (ms then num in six digits) when num < 10^6 and 1 <= ms <= 9223372036853 (int-encoded by Redis), else "ms:num". Absent means full.
--- Publishes the key (as given) on the channel redlimit:refund when cost > 0, so other
--- instances drop the denials they cached (one may pass now; their leases stay). PUBLISH takes no key: a
--- Cluster broadcasts it. pcall: a client whose ACL forbids PUBLISH still refunds.
--- @arg limit int required 1..1000000000 Units refilled per period.
--- @arg period_ms int required 1..31622400000 Refill period in ms (at most 366 days).
--- @arg burst int default=limit 1..1000000000 Capacity: units a fresh key admits at once.
--- @arg cost int default=1 0..1000000000 Units to give back (never above full).
--- @arg now_ms int optional 0..140737488355328 Clock override in ms; Redis TIME when omitted.
--- @check refill_bounded limit period_ms burst
--- @return remaining int Whole units available after the refund.
--- @return reset_after_ms int ms until the key is back to full.
--- @include "lib/algo_gcra"
--- @include "lib/clock"
--- @args

local remaining, reset, writes = rl_gcra_refund(KEYS[1], limit, period_ms, burst, cost, rl_now_ms(now_ms), now_ms ~= nil)
rl_apply(writes)
if cost > 0 then redis.pcall('PUBLISH', 'redlimit:refund', KEYS[1]) end
return rl_reply({ remaining, reset })
