--- @script sliding_window
--- @version 3
--- @summary Sliding window (two counters): the current window's count plus the previous window's weighted by overlap must stay within `limit`. Two numbers per key; see the README for its error bound. v2: optional trailing share_ppm (priority classes); v1 callers send the same ARGV. v3: stores (current * 2^16 + previous) * 2^21 + window_start_ms mod 2^21 as one integer on the server clock while both counts are below 2^16 (Redis int-encodes it: about 40% fewer bytes per key), else "window_start_ms:current:previous" as before; reads v2 state (an upgrade under traffic loses nothing).
--- @key state The current and previous windows' counts: on the server clock, counts below 2^16, the integer (current * 2^16 + previous) * 2^21 + window_start_ms mod 2^21 (int-encoded by Redis; period and twice it not multiples of 2^21 ms); else "window_start_ms:current_count:previous_count". Absent means nothing used.
--- @arg limit int required 1..1000000000 Units admitted per window.
--- @arg period_ms int required 1..31622400000 Window length in ms (at most 366 days).
--- @arg cost int default=1 0..1000000000 Units this call takes; 0 is a peek that never writes.
--- @arg now_ms int optional 0..140737488355328 Clock override in ms; Redis TIME when omitted.
--- @arg share_ppm int default=1000000 0..1000000 Priority class: the share of the capacity (the limit) this call may use, in parts per million. Admitted only if at least capacity - floor(capacity * share_ppm / 1e6) units are left after it (decided at cost + that); 1000000 (the default) keeps nothing back.
--- @return allowed bool 1 if the cost was admitted and taken.
--- @return remaining int Whole units left after this call.
--- @return reset_after_ms int ms until the key is back to full (and expires).
--- @return retry_after_ms int 0 when allowed; ms until this cost would be admitted (for this class: cost + what it must leave); -1 never (cost + what it must leave > the capacity).
--- @include "lib/algo_sliding_window"
--- @include "lib/priority"
--- @args

local allowed, remaining, reset, retry, cmd, key, value, opt, at = rl_sliding_window_eval(KEYS[1], limit, period_ms, cost, rl_now_ms(now_ms), now_ms ~= nil, rl_keep(limit, share_ppm))
if cmd then rl_apply_write(cmd, key, value, opt, at) end
return rl_reply({ allowed, remaining, reset, retry })
