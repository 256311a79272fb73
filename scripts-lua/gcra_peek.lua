--- @script gcra_peek
--- @version 2
--- @summary Read-only gcra: what a call with this cost would get now, without taking anything. Runs with EVALSHA_RO and on replicas. v2: reads the state gcra v3 writes (see state) as well as v1's.
--- @readonly
--- @key state GCRA state: the theoretical arrival time (tat), ms + num / limit ms: the integer ms * 10^6 + num (ms then num in six digits) when num < 10^6 and 1 <= ms <= 9223372036853 (int-encoded by Redis), else "ms:num". Absent means full.
--- @arg limit int required 1..1000000000 Units refilled per period.
--- @arg period_ms int required 1..31622400000 Refill period in ms (at most 366 days).
--- @arg burst int default=limit 1..1000000000 Capacity: units a fresh key admits at once.
--- @arg cost int default=1 0..1000000000 Units the answer is for (nothing is taken).
--- @arg now_ms int optional 0..140737488355328 Clock override in ms; Redis TIME when omitted.
--- @check refill_bounded limit period_ms burst
--- @return allowed bool 1 if this cost would be admitted now.
--- @return remaining int Whole units available now.
--- @return reset_after_ms int ms until the key is back to full.
--- @return retry_after_ms int 0 when it would be admitted; ms until it would be; -1 never.
--- @include "lib/algo_gcra"
--- @include "lib/clock"
--- @args

local now = rl_now_ms(now_ms)
local allowed, remaining, reset, retry = rl_gcra_eval(KEYS[1], limit, period_ms, burst, cost, now, now_ms ~= nil)
-- What is there now, not what would be left after taking `cost`.
if allowed == 1 and cost > 0 then
  local _
  _, remaining, reset = rl_gcra_eval(KEYS[1], limit, period_ms, burst, 0, now, now_ms ~= nil)
end
return rl_reply({ allowed, remaining, reset, retry })
