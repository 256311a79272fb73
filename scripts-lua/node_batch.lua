--- @script node_batch
--- @version 1
--- @summary Redis Cluster: the decisions of many hash slots in one call, run on the primary that serves those slots. batch and multi_batch take decisions of one slot only (a call's keys must share one), and on a cluster the decisions of one event-loop turn almost never share one (256 in flight over 16384 slots), so each would be a call of its own. Here the call declares no key: send it on the primary's own connection (not through a cluster client, which would send it to any node). Each item names its own key in ARGV and the script is declared allow-cross-slot-keys (Redis >= 7.0, Valkey). Each decision is decided exactly as multi_batch decides it (batch when count is 1), in order, all-or-nothing over its own keys (which must share one slot: the client's keys of one subject share its hash tag). A decision whose key this node does not serve (its slot moved, or is moving and the key is not here, or no node serves it) is not decided: -1 on its items and code 3 (ELSEWHERE), nothing of it written; the caller sends it again by its slot, where redirects are followed. The call itself follows no redirect (it names no key), so no item is ever decided on a node that is only importing its slot. Also runs on a standalone Redis (every key is local there).
--- @flags allow-cross-slot-keys
--- @arg count int required 1..16 How many limits each decision has (the number of specs).
--- @arg specs string required maxlen=2048 The limits, `;`-separated, each `algo,limit,period_ms,burst,offset_ms,unit` with empty fields for what an algo does not take, as multi_batch's (e.g. `gcra,60,60000,10,,;quota,1000,,,0,day`).
--- @arg now_ms int optional 0..140737488355328 Clock override in ms; Redis TIME when omitted (pass '' to omit).
--- @arg tz_rules string optional maxlen=16384 Time zones of quota specs: one entry per spec, in order, `|`-separated, each empty or a time zone's rules, as multi_batch's. Empty: no zones.
--- @each items
--- @group key string required maxlen=65536 This item's state key (a block key for a block spec). The items of one decision (count in a row) have distinct keys in one hash slot; across decisions keys may repeat (a later decision sees what an earlier one took).
--- @group cost int default=1 0..1000000000000000 Units this item takes (its limit's cost in its decision).
--- @group share_ppm int default=1000000 0..1000000 This item's priority class: the share of its limit's capacity (burst for gcra/token_bucket, else limit) it may use, in parts per million, as multi_batch's. 1000000 (the default) keeps nothing back.
--- @check multi_batch_specs count specs items
--- @return now_ms int The clock reading (ms) every decision of the call used.
--- @return_each allowed int 1 if this limit alone would admit its cost; 0 if not; -1 on every item of a decision that was not decided: see remaining.
--- @return_each remaining int Whole units left on this limit: after the decision's consumption when all its limits admitted, else what it holds now (allowed -1: on the item whose key failed, 1 = WRONGTYPE, another Redis type; 2 = WRONGSTATE, a value that is not this algorithm's state; 3 = ELSEWHERE, a key this node does not serve, to be sent again by its slot; 0 on the others).
--- @return_each reset_after_ms int ms until this limit is back to full.
--- @return_each retry_after_ms int 0 when this limit admits; else its own wait; -1 never.
--- @include "lib/multi"
--- @include "lib/clock"
--- @args

local now = rl_now_ms(now_ms)
local simulated = now_ms ~= nil
local limits = rl_multi_batch_specs('node_batch', count, specs)
rl_multi_zones('node_batch', tz_rules, limits)
local keys = {}
for i = 1, #items do keys[i] = items[i].key end
-- One limit: batch's loop (each write at once); several: multi_batch's.
if count == 1 then return rl_reply(rl_batch_decide(keys, items, limits[1], now, simulated)) end
return rl_reply(rl_multi_batch('node_batch', keys, items, limits, now, simulated))
