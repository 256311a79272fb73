--- @script fixed_window_refund
--- @version 2
--- @summary Gives units back to the current window of a fixed_window key, never below zero used. v2: stores count * 2^22 + window_start_ms mod 2^22 as one integer on the server clock (Redis int-encodes it: about 40% fewer bytes per key), "window_start_ms:count" with now_ms or larger counts as before; reads v1 state (an upgrade under traffic loses nothing).
--- @key state The window's count: on the server clock the integer count * 2^22 + window_start_ms mod 2^22, expiring at the window's end (int-encoded by Redis; count below 2^31, period not a multiple of 2^22 ms); else "window_start_ms:count". Absent means nothing used.
--- Publishes the key (as given) on the channel redlimit:refund when cost > 0, so other
--- instances drop the denials they cached (one may pass now; their leases stay). PUBLISH takes no key: a
--- Cluster broadcasts it. pcall: a client whose ACL forbids PUBLISH still refunds.
--- @arg limit int required 1..1000000000 Units admitted per window.
--- @arg period_ms int required 1..31622400000 Window length in ms (at most 366 days).
--- @arg offset_ms int default=0 0..31622400000 Windows start at offset_ms + k * period_ms (e.g. local midnight); less than period_ms.
--- @arg cost int default=1 0..1000000000 Units to give back (never above full).
--- @arg now_ms int optional 0..140737488355328 Clock override in ms; Redis TIME when omitted.
--- @check offset_within_period period_ms offset_ms
--- @return remaining int Whole units available after the refund.
--- @return reset_after_ms int ms until the key is back to full.
--- @include "lib/algo_fixed_window"
--- @args

local remaining, reset, writes = rl_fixed_window_refund(KEYS[1], limit, period_ms, offset_ms, cost, rl_now_ms(now_ms), now_ms ~= nil)
rl_apply(writes)
if cost > 0 then redis.pcall('PUBLISH', 'redlimit:refund', KEYS[1]) end
return rl_reply({ remaining, reset })
