--- @script token_bucket
--- @version 4
--- @summary Token bucket: a fresh key admits `burst` units at once, then refills continuously at `limit` per `period_ms`. State is one string (a hash up to v2); decisions are identical to gcra. v2: optional trailing share_ppm (priority classes); v1 callers send the same ARGV. v3: a string instead of a hash (one SET instead of HSET + PEXPIREAT): the negative integer -(ts_ms * 1000 + tokens) when no fraction of a unit is left and tokens < 1000 (Redis int-encodes it), else "tokens,frac,ts_ms"; reads v2 state (an upgrade under traffic loses nothing). v4: on the server clock a fraction of a unit no longer makes it a string: "-" followed by 19 digits (the digit counts of tokens and frac, tokens, frac, ts_ms mod 10^e in the e = 17 - wd - fd digits left), which Redis int-encodes, when tokens < 10^8, frac < 10^9 and 10^e ms exceeds the time to full plus 120 s (see state); same decisions; reads every earlier form (an upgrade under traffic loses nothing).
--- @key state The content (tokens + frac / period_ms units) and when it was counted (ts_ms), one string value in the first form that applies: the negative integer -(ts_ms * 1000 + tokens) when frac is 0 and 0 <= tokens < 1000; on the server clock (now_ms omitted), when 0 <= tokens < 10^8, frac < 10^9 and 10^e ms exceeds its time to full plus 120 s, "-" followed by 19 digits: the digit counts of tokens (wd) and of frac (fd), tokens, frac, then ts_ms mod 10^e zero-padded to e = 17 - wd - fd digits (read back exactly while the reader's clock is at most 60 s behind ts_ms); both int-encoded by Redis; else "tokens,frac,ts_ms". Absent means full.
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
--- @include "lib/algo_token_bucket"
--- @include "lib/priority"
--- @include "lib/clock"
--- @args

local allowed, remaining, reset, retry, writes = rl_token_bucket_eval(KEYS[1], limit, period_ms, burst, cost, rl_now_ms(now_ms), now_ms ~= nil, rl_keep(burst, share_ppm))
if allowed == 1 then rl_apply(writes) end
return rl_reply({ allowed, remaining, reset, retry })
