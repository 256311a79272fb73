--- @script quota
--- @version 3
--- @summary Quota: a cost-weighted budget per calendar day, week or month in a UTC offset. Resets exactly at the period end (the key expires at that instant, never earlier). v2: optional trailing share_ppm (priority classes); v1 callers send the same ARGV. v3 (from v2): optional trailing tz_rules, a time zone's rules (DST-correct periods) in place of the fixed utc_offset_ms; v2 callers send the same ARGV.
--- @key state The period and what it used, "period_start_ms:used". Absent means nothing used.
--- @arg limit int required 1..1000000000000000 Units per calendar period (up to 1e15: token budgets).
--- @arg unit enum:day|week|month required The calendar period: day, ISO week (from Monday) or month.
--- @arg utc_offset_ms int default=0 -50400000..50400000 Fixed offset of the local time zone from UTC in ms (e.g. 3600000 for UTC+1).
--- @arg cost int default=1 0..1000000000000000 Units this call takes; 0 is a peek that never writes.
--- @arg now_ms int optional 0..140737488355328 Clock override in ms; Redis TIME when omitted.
--- @arg share_ppm int default=1000000 0..1000000 Priority class: the share of the capacity (the limit) this call may use, in parts per million. Admitted only if at least capacity - floor(capacity * share_ppm / 1e6) units are left after it (decided at cost + that); 1000000 (the default) keeps nothing back.
--- @arg tz_rules string optional maxlen=1024 The time zone's rules, "off0;t1:off1;t2:off2;..." in ms (src/client/time-zone.ts builds them from an IANA zone): periods start at local midnight with daylight saving time. When given it is the zone and utc_offset_ms is ignored; omitted or empty keeps the fixed offset.
--- @return allowed bool 1 if the cost was admitted and taken.
--- @return remaining int Whole units left after this call.
--- @return reset_after_ms int ms until the key is back to full (and expires).
--- @return retry_after_ms int 0 when allowed; ms until this cost would be admitted (for this class: cost + what it must leave); -1 never (cost + what it must leave > the capacity).
--- @include "lib/algo_quota"
--- @include "lib/priority"
--- @args

local zone = utc_offset_ms
if tz_rules then zone = rl_tz_rules('quota', tz_rules) end
local allowed, remaining, reset, retry, cmd, key, value, opt, at = rl_quota_decide(KEYS[1], limit, unit, zone, cost, rl_now_ms(now_ms), now_ms ~= nil, rl_keep(limit, share_ppm))
if cmd then rl_apply_write(cmd, key, value, opt, at) end
return rl_reply({ allowed, remaining, reset, retry })
