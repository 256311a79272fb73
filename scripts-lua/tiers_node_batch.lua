--- @script tiers_node_batch
--- @version 1
--- @summary Redis Cluster: tiers decisions (each subject's limits in ONE key, lib/tiers) of many hash slots in one call, run on the primary that serves those slots, as node_batch carries a key per limit. tiers takes decisions of one slot only (a call's keys must share one), and the decisions of one event-loop turn on a cluster almost never share one. Here the call declares no key: send it on the primary's own connection (not through a cluster client, which would send it to any node). Each item names its subject's key in ARGV and the script is declared allow-cross-slot-keys (Redis >= 7.0, Valkey). Each decision is decided exactly as tiers decides it (same replies, same writes, adopt alike), in order. A decision whose key this node does not serve (its slot moved, or is moving and the key is not here, or no node serves it) is not decided: -1 on each of its limits and code 3 (ELSEWHERE) on the first, nothing of it written; the caller sends it again by its slot, where redirects are followed. The call follows no redirect (it names no key), so no decision is ever made on a node that is only importing its slot. Also runs on a standalone Redis (every key is local there).
--- @flags allow-cross-slot-keys
--- @arg count int required 1..16 How many limits each decision has (the number of specs).
--- @arg specs string required maxlen=2048 The limits, `;`-separated, each `algo,limit,period_ms,burst,offset_ms,unit` with empty fields for what an algo does not take, as tiers takes them (gcra, token_bucket, fixed_window, sliding_window and quota only).
--- @arg now_ms int optional 0..140737488355328 Clock override in ms; Redis TIME when omitted (pass '' to omit).
--- @arg tz_rules string optional maxlen=16384 Time zones of quota specs: one entry per spec, in order, `|`-separated, each empty or a time zone's rules, as tiers takes them. Empty: no zones.
--- @arg adopt string optional maxlen=1040 The upgrade from a key per limit, as tiers takes it: the limits' names, `+`-joined in specs order as the keys name them. Empty: no adoption.
--- @each items per=count
--- @group key string required maxlen=65536 This decision's subject key (holding every limit of `specs`). Keys may repeat (decided in order); a subject's key and the keys adopt reads of it share a hash tag, so one slot.
--- @group costs string optional maxlen=512 Units each limit takes, `count` comma-separated integers in specs order, as tiers takes them. Empty: 1 each.
--- @group shares string optional maxlen=256 Priority class per limit: `count` comma-separated share_ppm values, as tiers takes them. Empty: no class.
--- @check tiers_specs count specs items
--- @return now_ms int The clock reading (ms) every decision of the call used.
--- @return_each allowed int Per limit of each decision, in order (count results per item): 1 if this limit alone would admit its cost; 0 if not; -1 on every limit of a decision that was not decided: see remaining.
--- @return_each remaining int Whole units left on this limit: after the decision's consumption when all its limits admitted, else what it holds now (allowed -1: 1 = WRONGTYPE on the first limit, 2 = WRONGSTATE on the limit whose state cannot be read, or the first, 3 = ELSEWHERE on the first, a key this node does not serve, to be sent again by its slot; 0 on the others).
--- @return_each reset_after_ms int ms until this limit is back to full.
--- @return_each retry_after_ms int 0 when this limit admits; else its own wait; -1 never.
--- @include "lib/tiers"
--- @include "lib/clock"
--- @args

local now = rl_now_ms(now_ms)
local plan = rl_tiers_plan('tiers_node_batch', count, specs, tz_rules)
local keys = {}
for i = 1, #items do keys[i] = items[i].key end
return rl_reply(rl_tiers_run(rl_tiers_batch, 'tiers_node_batch', keys, items, plan, now, now_ms ~= nil, true, rl_tiers_adopt('tiers_node_batch', adopt, count)))
