--- @script fixed_window
--- @version 3
--- @summary Fixed window: at most `limit` units per window of `period_ms` aligned to the epoch plus `offset_ms`. Denied calls do not count. The cheapest limiter; allows up to 2x limit across a window boundary. v2: optional trailing share_ppm (priority classes); v1 callers send the same ARGV. v3: stores count * 2^22 + window_start_ms mod 2^22 as one integer on the server clock (Redis int-encodes it: about 40% fewer bytes per key), "window_start_ms:count" with now_ms or larger counts as before; reads v2 state (an upgrade under traffic loses nothing).
--- @key state The window's count: on the server clock the integer count * 2^22 + window_start_ms mod 2^22, expiring at the window's end (int-encoded by Redis; count below 2^31, period not a multiple of 2^22 ms); else "window_start_ms:count". Absent means nothing used.
--- @arg limit int required 1..1000000000 Units admitted per window.
--- @arg period_ms int required 1..31622400000 Window length in ms (at most 366 days).
--- @arg offset_ms int default=0 0..31622400000 Windows start at offset_ms + k * period_ms (e.g. local midnight); less than period_ms.
--- @arg cost int default=1 0..1000000000 Units this call takes; 0 is a peek that never writes.
--- @arg now_ms int optional 0..140737488355328 Clock override in ms; Redis TIME when omitted.
--- @arg share_ppm int default=1000000 0..1000000 Priority class: the share of the capacity (the limit) this call may use, in parts per million. Admitted only if at least capacity - floor(capacity * share_ppm / 1e6) units are left after it (decided at cost + that); 1000000 (the default) keeps nothing back.
--- @check offset_within_period period_ms offset_ms
--- @return allowed bool 1 if the cost was admitted and taken.
--- @return remaining int Whole units left after this call.
--- @return reset_after_ms int ms until the key is back to full (and expires).
--- @return retry_after_ms int 0 when allowed; ms until this cost would be admitted (for this class: cost + what it must leave); -1 never (cost + what it must leave > the capacity).
--- @include "lib/algo_fixed_window"
--- @include "lib/priority"
--- @args

local allowed, remaining, reset, retry, cmd, key, value, opt, at = rl_fixed_window_eval(KEYS[1], limit, period_ms, offset_ms, cost, rl_now_ms(now_ms), now_ms ~= nil, rl_keep(limit, share_ppm))
if cmd then rl_apply_write(cmd, key, value, opt, at) end
return rl_reply({ allowed, remaining, reset, retry })
