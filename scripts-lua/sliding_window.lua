--- @script sliding_window
--- @version 1
--- @summary Sliding window (two counters): the current window's count plus the previous window's weighted by overlap must stay within `limit`. Two numbers per key; see the README for its error bound.
--- @key state "window_start_ms:current_count:previous_count". Absent means nothing used.
--- @arg limit int required 1..1000000000 Units admitted per window.
--- @arg period_ms int required 1..31622400000 Window length in ms (at most 366 days).
--- @arg cost int default=1 0..1000000000 Units this call takes; 0 is a peek that never writes.
--- @arg now_ms int optional 0..140737488355328 Clock override in ms; Redis TIME when omitted.
--- @return allowed bool 1 if the cost was admitted and taken.
--- @return remaining int Whole units left after this call.
--- @return reset_after_ms int ms until the key is back to full (and expires).
--- @return retry_after_ms int 0 when allowed; ms until this cost would be admitted; -1 when cost > the limit or burst (never).
--- @include "lib/algo_sliding_window"
--- @args

local allowed, remaining, reset, retry, writes = rl_sliding_window_eval(KEYS[1], limit, period_ms, cost, rl_now_ms(now_ms), now_ms ~= nil)
if allowed == 1 then rl_apply(writes) end
return rl_reply({ allowed, remaining, reset, retry })
