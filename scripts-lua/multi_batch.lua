--- @script multi_batch
--- @version 1
--- @summary Many independent multi decisions over the same limits in one call: each decision is all-or-nothing over its own keys (one per limit), decided in order exactly as separate multi calls would. What the client sends when several decisions of one multi-limit limiter arrive in the same event-loop turn.
--- @key state+ repeats The keys of every decision, decision after decision, one per limit in `specs` order (a block key for a block spec). Within a decision the keys differ; across decisions they may repeat. In Redis Cluster all must share a hash slot.
--- @arg count int required 1..16 How many limits each decision has (the number of specs).
--- @arg specs string required maxlen=2048 The limits, `;`-separated, each `algo,limit,period_ms,burst,offset_ms,unit` with empty fields for what an algo does not take (e.g. `gcra,60,60000,10,,;quota,1000,,,0,day;block,,,,,`).
--- @arg now_ms int optional 0..140737488355328 Clock override in ms; Redis TIME when omitted (pass '' to omit).
--- @each items
--- @group cost int default=1 0..1000000000000000 Units this item takes (its limit's cost in its decision).
--- @check multi_batch_specs count specs items
--- @return now_ms int The clock reading (ms) every decision of the call used.
--- @return_each allowed bool 1 if this limit alone would admit its cost.
--- @return_each remaining int Whole units left on this limit: after the decision's consumption when all its limits admitted, else what it holds now.
--- @return_each reset_after_ms int ms until this limit is back to full.
--- @return_each retry_after_ms int 0 when this limit admits; else its own wait; -1 never.
--- @include "lib/multi"
--- @include "lib/clock"
--- @args

local now = rl_now_ms(now_ms)
local simulated = now_ms ~= nil
local limits = rl_multi_batch_specs('multi_batch', count, specs)
local reply = { now }
local keys, decision = {}, {}
for d = 0, #items / count - 1 do
  for j = 1, count do
    keys[j] = KEYS[d * count + j]
    limits[j].cost = items[d * count + j].cost
    decision[j] = limits[j]
  end
  local r = rl_multi('multi_batch', keys, decision, now, simulated, true)
  for k = 4, #r do reply[#reply + 1] = r[k] end
end
return rl_reply(reply)
