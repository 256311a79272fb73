--- @script token_bucket_peek
--- @version 3
--- @summary Read-only token_bucket: what a call with this cost would get now, without taking anything. Runs with EVALSHA_RO and on replicas. v2: reads the state token_bucket v3 writes (see state) as well as v1's. v3: reads the compact form token_bucket v4 writes on the server clock (see state) as well as every earlier one.
--- @readonly
--- @key state The content (tokens + frac / period_ms units) and when it was counted (ts_ms), one string value in the first form that applies: the negative integer -(ts_ms * 1000 + tokens) when frac is 0 and 0 <= tokens < 1000; on the server clock (now_ms omitted), when 0 <= tokens < 10^8, frac < 10^9 and 10^e ms exceeds its time to full plus 120 s, "-" followed by 19 digits: the digit counts of tokens (wd) and of frac (fd), tokens, frac, then ts_ms mod 10^e zero-padded to e = 17 - wd - fd digits (read back exactly while the reader's clock is at most 60 s behind ts_ms); both int-encoded by Redis; else "tokens,frac,ts_ms". Absent means full.
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
--- @include "lib/algo_token_bucket"
--- @include "lib/clock"
--- @args

local now = rl_now_ms(now_ms)
local allowed, remaining, reset, retry = rl_token_bucket_eval(KEYS[1], limit, period_ms, burst, cost, now, now_ms ~= nil)
-- What is there now, not what would be left after taking `cost`.
if allowed == 1 and cost > 0 then
  local _
  _, remaining, reset = rl_token_bucket_eval(KEYS[1], limit, period_ms, burst, 0, now, now_ms ~= nil)
end
return rl_reply({ allowed, remaining, reset, retry })
