--- @script gcra
--- @version 3
--- @summary Generic cell rate algorithm: a fresh key admits `burst` units at once, then refills continuously at `limit` per `period_ms`. State is one string; decisions are identical to token_bucket. v2: optional trailing share_ppm (priority classes); v1 callers send the same ARGV. v3: stores the tat as one integer, ms * 10^6 + num (ms then num in six digits), int-encoded when the tat's fraction num < 1e6, i.e. every limit up to 1e6 (Redis int-encodes it: about 30% fewer bytes per key), else "ms:num" as before; reads v2 state (an upgrade under traffic loses nothing).
--- @key state GCRA state: the theoretical arrival time (tat), ms + num / limit ms: the integer ms * 10^6 + num (ms then num in six digits) when num < 10^6 and 1 <= ms <= 9223372036853 (int-encoded by Redis), else "ms:num". Absent means full.
--- @arg limit int required 1..1000000000 Units refilled per period.
--- @arg period_ms int required 1..31622400000 Refill period in ms (at most 366 days).
--- @arg burst int default=limit 1..1000000000 Capacity: units a fresh key admits at once.
--- @arg cost int default=1 0..1000000000 Units this call takes; 0 is a peek that never writes.
--- @arg now_ms int optional 0..140737488355328 Clock override in ms; Redis TIME when omitted.
--- @arg share_ppm int default=1000000 0..1000000 Priority class: the share of the capacity (burst) this call may use, in parts per million. Admitted only if at least capacity - floor(capacity * share_ppm / 1e6) units are left after it (decided at cost + that); 1000000 (the default) keeps nothing back.
--- @check refill_bounded limit period_ms burst
--- @return allowed bool 1 if the cost was admitted and taken.
--- @return remaining int Whole units left after this call.
--- @return reset_after_ms int ms until the key is back to full (and expires).
--- @return retry_after_ms int 0 when allowed; ms until this cost would be admitted (for this class: cost + what it must leave); -1 never (cost + what it must leave > the capacity).
--- @include "lib/algo_gcra"
--- @include "lib/priority"
--- @include "lib/clock"
--- @args

local allowed, remaining, reset, retry = rl_gcra_eval(KEYS[1], limit, period_ms, burst, cost, rl_now_ms(now_ms), now_ms ~= nil, true, rl_keep(burst, share_ppm))
return rl_reply({ allowed, remaining, reset, retry })
