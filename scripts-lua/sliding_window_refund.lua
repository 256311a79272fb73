--- @script sliding_window_refund
--- @version 2
--- @summary Gives units back to the current window of a sliding_window key, never below zero. v2: stores (current * 2^16 + previous) * 2^21 + window_start_ms mod 2^21 as one integer on the server clock while both counts are below 2^16 (Redis int-encodes it: about 40% fewer bytes per key), else "window_start_ms:current:previous" as before; reads v1 state (an upgrade under traffic loses nothing).
--- @key state The current and previous windows' counts: on the server clock, counts below 2^16, the integer (current * 2^16 + previous) * 2^21 + window_start_ms mod 2^21 (int-encoded by Redis; period and twice it not multiples of 2^21 ms); else "window_start_ms:current_count:previous_count". Absent means nothing used.
--- Publishes the key (as given) on the channel redlimit:refund when cost > 0, so other
--- instances drop the denials they cached (one may pass now; their leases stay). PUBLISH takes no key: a
--- Cluster broadcasts it. pcall: a client whose ACL forbids PUBLISH still refunds.
--- @arg limit int required 1..1000000000 Units admitted per window.
--- @arg period_ms int required 1..31622400000 Window length in ms (at most 366 days).
--- @arg cost int default=1 0..1000000000 Units to give back (never above full).
--- @arg now_ms int optional 0..140737488355328 Clock override in ms; Redis TIME when omitted.
--- @return remaining int Whole units available after the refund.
--- @return reset_after_ms int ms until the key is back to full.
--- @include "lib/algo_sliding_window"
--- @args

local remaining, reset, writes = rl_sliding_window_refund(KEYS[1], limit, period_ms, cost, rl_now_ms(now_ms), now_ms ~= nil)
rl_apply(writes)
if cost > 0 then redis.pcall('PUBLISH', 'redlimit:refund', KEYS[1]) end
return rl_reply({ remaining, reset })
