--- @script multi_batch
--- @version 4
--- @summary Many independent multi decisions over the same limits in one call: each decision is all-or-nothing over its own keys (one per limit), decided in order exactly as separate multi calls would. A decision with a key that holds another Redis type or foreign state fails alone (its marker in the reply; nothing of it written); the others are decided. What the client sends when several decisions of one multi-limit limiter arrive in the same event-loop turn. v3 (from v2): each item's group is cost, share_ppm (2 arguments, was 1); v2's ARGV is refused (BADARG: argument count). v4 (from v3): a fixed argument tz_rules after now_ms (time zone rules of quota specs, one entry per spec), 4 fixed arguments instead of 3; v3's ARGV is refused (BADARG: argument count). Specs take no concurrency limit (it needs a holder per decision: use multi).
--- @key state+ repeats The keys of every decision, decision after decision, one per limit in `specs` order (a block key for a block spec). Within a decision the keys differ; across decisions they may repeat. In Redis Cluster all must share a hash slot.
--- @arg count int required 1..16 How many limits each decision has (the number of specs).
--- @arg specs string required maxlen=2048 The limits, `;`-separated, each `algo,limit,period_ms,burst,offset_ms,unit` with empty fields for what an algo does not take (e.g. `gcra,60,60000,10,,;quota,1000,,,0,day;block,,,,,`).
--- @arg now_ms int optional 0..140737488355328 Clock override in ms; Redis TIME when omitted (pass '' to omit).
--- @arg tz_rules string optional maxlen=16384 Time zones of quota specs: one entry per spec (limit), in order, `|`-separated, each empty (the limit keeps its offset_ms) or a time zone's rules, "off0;t1:off1;..." in ms (src/client/time-zone.ts builds them from an IANA zone; at most 1024 bytes each). Empty: no zones. A rule for a limit that is not quota, or a count of entries other than count, is refused (BADARG).
--- @each items
--- @group cost int default=1 0..1000000000000000 Units this item takes (its limit's cost in its decision).
--- @group share_ppm int default=1000000 0..1000000 This item's priority class: the share of its limit's capacity (burst for gcra/token_bucket, else limit) it may use, in parts per million; the limit admits only if capacity - floor(capacity * share_ppm / 1e6) units are left after it. 1000000 (the default) keeps nothing back.
--- @check multi_batch_specs count specs items
--- @return now_ms int The clock reading (ms) every decision of the call used.
--- @return_each allowed int 1 if this limit alone would admit its cost; 0 if not; -1 on every item of a decision that failed alone: one of its keys holds another Redis type or foreign state, and nothing of the decision was written.
--- @return_each remaining int Whole units left on this limit: after the decision's consumption when all its limits admitted, else what it holds now (allowed -1: on the item whose key failed, 1 = WRONGTYPE, another Redis type, or 2 = WRONGSTATE, a value that is not this algorithm's state; 0 on the others).
--- @return_each reset_after_ms int ms until this limit is back to full.
--- @return_each retry_after_ms int 0 when this limit admits; else its own wait; -1 never.
--- @include "lib/multi"
--- @include "lib/clock"
--- @args

local now = rl_now_ms(now_ms)
local limits = rl_multi_batch_specs('multi_batch', count, specs)
rl_multi_zones('multi_batch', tz_rules, limits)
return rl_reply(rl_multi_batch('multi_batch', KEYS, items, limits, now, now_ms ~= nil))
