--- @script sliding_log
--- @version 2
--- @summary Sliding log: an exact rolling window; at most `limit` units admitted in any `period_ms`. Memory: one entry per admitted call, so at most `limit` entries per key; trimmed in the same call. v2: optional trailing share_ppm (priority classes); v1 callers send the same ARGV.
--- @key log Sorted set: one entry per admitted call, scored by its time, named "<cumulative units, zero-padded to 16 digits>:<cost>". Absent means empty.
--- @arg limit int required 1..1000000000 Units admitted per window.
--- @arg period_ms int required 1..31622400000 Window length in ms (at most 366 days).
--- @arg cost int default=1 0..1000000000 Units this call takes; 0 is a peek that never writes.
--- @arg now_ms int optional 0..140737488355328 Clock override in ms; Redis TIME when omitted.
--- @arg share_ppm int default=1000000 0..1000000 Priority class: the share of the capacity (the limit) this call may use, in parts per million. Admitted only if at least capacity - floor(capacity * share_ppm / 1e6) units are left after it (decided at cost + that); 1000000 (the default) keeps nothing back.
--- @return allowed bool 1 if the cost was admitted and taken.
--- @return remaining int Whole units left after this call.
--- @return reset_after_ms int ms until the key is back to full (and expires).
--- @return retry_after_ms int 0 when allowed; ms until this cost would be admitted (for this class: cost + what it must leave); -1 never (cost + what it must leave > the capacity).
--- @include "lib/algo_sliding_log"
--- @include "lib/priority"
--- @args

local allowed, remaining, reset, retry, writes = rl_sliding_log_eval(KEYS[1], limit, period_ms, cost, rl_now_ms(now_ms), now_ms ~= nil, true, rl_keep(limit, share_ppm))
if allowed == 1 then rl_apply(writes) end
return rl_reply({ allowed, remaining, reset, retry })
