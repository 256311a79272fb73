--- @script sliding_window_peek
--- @version 2
--- @summary Read-only sliding_window: what a call with this cost would get now. Runs with EVALSHA_RO and on replicas. v2: reads the state sliding_window v3 writes (see state) as well as v1's.
--- @readonly
--- @key state The current and previous windows' counts: on the server clock, counts below 2^16, the integer (current * 2^16 + previous) * 2^21 + window_start_ms mod 2^21 (int-encoded by Redis; period and twice it not multiples of 2^21 ms); else "window_start_ms:current_count:previous_count". Absent means nothing used.
--- @arg limit int required 1..1000000000 Units admitted per window.
--- @arg period_ms int required 1..31622400000 Window length in ms (at most 366 days).
--- @arg cost int default=1 0..1000000000 Units the answer is for (nothing is taken).
--- @arg now_ms int optional 0..140737488355328 Clock override in ms; Redis TIME when omitted.
--- @return allowed bool 1 if this cost would be admitted now.
--- @return remaining int Whole units available now.
--- @return reset_after_ms int ms until the key is back to full.
--- @return retry_after_ms int 0 when it would be admitted; ms until it would be; -1 never.
--- @include "lib/algo_sliding_window"
--- @args

local now = rl_now_ms(now_ms)
local allowed, remaining, reset, retry = rl_sliding_window_eval(KEYS[1], limit, period_ms, cost, now, now_ms ~= nil)
-- What is there now, not what would be left after taking `cost`.
if allowed == 1 and cost > 0 then
  local _
  _, remaining, reset = rl_sliding_window_eval(KEYS[1], limit, period_ms, 0, now, now_ms ~= nil)
end
return rl_reply({ allowed, remaining, reset, retry })
