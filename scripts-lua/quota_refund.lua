--- @script quota_refund
--- @version 2
--- @summary Gives units back to the current period of a quota key, never below zero used. v2 (from v1): optional trailing tz_rules, a time zone's rules in place of the fixed utc_offset_ms; v1 callers send the same ARGV.
--- @key state The period and what it used, "period_start_ms:used". Absent means nothing used.
--- Publishes the key (as given) on the channel redlimit:refund when cost > 0, so other
--- instances drop the denials they cached (one may pass now; their leases stay). PUBLISH takes no key: a
--- Cluster broadcasts it. pcall: a client whose ACL forbids PUBLISH still refunds.
--- @arg limit int required 1..1000000000000000 Units per calendar period (up to 1e15: token budgets).
--- @arg unit enum:day|week|month required The calendar period: day, ISO week (from Monday) or month.
--- @arg utc_offset_ms int default=0 -50400000..50400000 Fixed offset of the local time zone from UTC in ms (e.g. 3600000 for UTC+1).
--- @arg cost int default=1 0..1000000000000000 Units to give back.
--- @arg now_ms int optional 0..140737488355328 Clock override in ms; Redis TIME when omitted.
--- @arg tz_rules string optional maxlen=1024 The time zone's rules, "off0;t1:off1;t2:off2;..." in ms (src/client/time-zone.ts builds them from an IANA zone): periods start at local midnight with daylight saving time. When given it is the zone and utc_offset_ms is ignored; omitted or empty keeps the fixed offset.
--- @return remaining int Whole units available after the refund.
--- @return reset_after_ms int ms until the key is back to full.
--- @include "lib/algo_quota"
--- @args

local zone = utc_offset_ms
if tz_rules then zone = rl_tz_rules('quota_refund', tz_rules) end
local remaining, reset, writes = rl_quota_refund(KEYS[1], limit, unit, zone, cost, rl_now_ms(now_ms), now_ms ~= nil)
rl_apply(writes)
if cost > 0 then redis.pcall('PUBLISH', 'redlimit:refund', KEYS[1]) end
return rl_reply({ remaining, reset })
