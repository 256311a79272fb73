--- @script quota_peek
--- @version 2
--- @summary Read-only quota: usage and what a call with this cost would get now. Runs with EVALSHA_RO and on replicas. v2 (from v1): optional trailing tz_rules, a time zone's rules in place of the fixed utc_offset_ms; v1 callers send the same ARGV.
--- @readonly
--- @key state The period and what it used, "period_start_ms:used". Absent means nothing used.
--- @arg limit int required 1..1000000000000000 Units per calendar period (up to 1e15: token budgets).
--- @arg unit enum:day|week|month required The calendar period: day, ISO week (from Monday) or month.
--- @arg utc_offset_ms int default=0 -50400000..50400000 Fixed offset of the local time zone from UTC in ms (e.g. 3600000 for UTC+1).
--- @arg cost int default=1 0..1000000000000000 Units the answer is for (nothing is taken).
--- @arg now_ms int optional 0..140737488355328 Clock override in ms; Redis TIME when omitted.
--- @arg tz_rules string optional maxlen=1024 The time zone's rules, "off0;t1:off1;t2:off2;..." in ms (src/client/time-zone.ts builds them from an IANA zone): periods start at local midnight with daylight saving time. When given it is the zone and utc_offset_ms is ignored; omitted or empty keeps the fixed offset.
--- @return allowed bool 1 if this cost would be admitted now.
--- @return remaining int Whole units available now.
--- @return reset_after_ms int ms until the key is back to full.
--- @return retry_after_ms int 0 when it would be admitted; ms until it would be; -1 never.
--- @include "lib/algo_quota"
--- @args

local now = rl_now_ms(now_ms)
local zone = utc_offset_ms
if tz_rules then zone = rl_tz_rules('quota_peek', tz_rules) end
local allowed, remaining, reset, retry = rl_quota_decide(KEYS[1], limit, unit, zone, cost, now, now_ms ~= nil)
-- What is there now, not what would be left after taking `cost`.
if allowed == 1 and cost > 0 then
  local _
  _, remaining, reset = rl_quota_decide(KEYS[1], limit, unit, zone, 0, now, now_ms ~= nil)
end
return rl_reply({ allowed, remaining, reset, retry })
