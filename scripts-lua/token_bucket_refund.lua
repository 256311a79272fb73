--- @script token_bucket_refund
--- @version 3
--- @summary Gives units back to a token_bucket key (a call that was admitted but not used), never above burst. v2: a string instead of a hash (one SET instead of HSET + PEXPIREAT): the negative integer -(ts_ms * 1000 + tokens) when no fraction of a unit is left and tokens < 1000 (Redis int-encodes it), else "tokens,frac,ts_ms"; reads v1 state (an upgrade under traffic loses nothing). v3: on the server clock a fraction of a unit no longer makes it a string: "-" followed by 19 digits (the digit counts of tokens and frac, tokens, frac, ts_ms mod 10^e in the e = 17 - wd - fd digits left), which Redis int-encodes, when tokens < 10^8, frac < 10^9 and 10^e ms exceeds the time to full plus 120 s (see state); same decisions; reads every earlier form (an upgrade under traffic loses nothing).
--- @key state The content (tokens + frac / period_ms units) and when it was counted (ts_ms), one string value in the first form that applies: the negative integer -(ts_ms * 1000 + tokens) when frac is 0 and 0 <= tokens < 1000; on the server clock (now_ms omitted), when 0 <= tokens < 10^8, frac < 10^9 and 10^e ms exceeds its time to full plus 120 s, "-" followed by 19 digits: the digit counts of tokens (wd) and of frac (fd), tokens, frac, then ts_ms mod 10^e zero-padded to e = 17 - wd - fd digits (read back exactly while the reader's clock is at most 60 s behind ts_ms); both int-encoded by Redis; else "tokens,frac,ts_ms". Absent means full.
--- Publishes the key (as given) on the channel redlimit:refund when cost > 0, so other
--- instances drop the denials they cached (one may pass now; their leases stay). PUBLISH takes no key: a
--- Cluster broadcasts it. pcall: a client whose ACL forbids PUBLISH still refunds.
--- @arg limit int required 1..1000000000 Units refilled per period.
--- @arg period_ms int required 1..31622400000 Refill period in ms (at most 366 days).
--- @arg burst int default=limit 1..1000000000 Capacity: units a fresh key admits at once.
--- @arg cost int default=1 0..1000000000 Units to give back (never above full).
--- @arg now_ms int optional 0..140737488355328 Clock override in ms; Redis TIME when omitted.
--- @check refill_bounded limit period_ms burst
--- @return remaining int Whole units available after the refund.
--- @return reset_after_ms int ms until the key is back to full.
--- @include "lib/algo_token_bucket"
--- @include "lib/clock"
--- @args

local remaining, reset, writes = rl_token_bucket_refund(KEYS[1], limit, period_ms, burst, cost, rl_now_ms(now_ms), now_ms ~= nil)
rl_apply(writes)
if cost > 0 then redis.pcall('PUBLISH', 'redlimit:refund', KEYS[1]) end
return rl_reply({ remaining, reset })
