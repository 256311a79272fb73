--- @script quota_refund
--- @version 1
--- @summary Gives units back to the current period of a quota key, never below zero used.
--- @key state The period and what it used, "period_start_ms:used". Absent means nothing used.
--- Publishes the key (as given) on the channel redlimit:refund when cost > 0, so other
--- instances drop the denials they cached (one may pass now; their leases stay). PUBLISH takes no key: a
--- Cluster broadcasts it. pcall: a client whose ACL forbids PUBLISH still refunds.
--- @arg limit int required 1..1000000000000000 Units per calendar period (up to 1e15: token budgets).
--- @arg unit enum:day|week|month required The calendar period: day, ISO week (from Monday) or month.
--- @arg utc_offset_ms int default=0 -50400000..50400000 Fixed offset of the local time zone from UTC in ms (e.g. 3600000 for UTC+1).
--- @arg cost int default=1 0..1000000000000000 Units to give back.
--- @arg now_ms int optional 0..140737488355328 Clock override in ms; Redis TIME when omitted.
--- @return remaining int Whole units available after the refund.
--- @return reset_after_ms int ms until the key is back to full.
--- @include "lib/algo_quota"
--- @args

local remaining, reset, writes = rl_quota_refund(KEYS[1], limit, unit, utc_offset_ms, cost, rl_now_ms(now_ms), now_ms ~= nil)
rl_apply(writes)
if cost > 0 then redis.pcall('PUBLISH', 'redlimit:refund', KEYS[1]) end
return rl_reply({ remaining, reset })
