--- @script batch
--- @version 4
--- @summary Many independent decisions on one limit in one call: each key is a decision of its own (all-or-nothing for its own cost), decided in order exactly as if each had been sent alone. A decision whose key holds another Redis type or foreign state fails alone (its marker in the reply; nothing of it written); the others are decided. What the client sends when several decisions of one limiter arrive in the same event-loop turn. v3 (from v2): each decision's group is cost, share_ppm (2 arguments, was 1); v2's ARGV is refused (BADARG: argument count). v4 (from v3): a fixed argument tz_rules before now_ms (a quota limit's time zone rules), 8 fixed arguments instead of 7; v3's ARGV is refused (BADARG: argument count).
--- @key state+ repeats One state key per decision, in order. A key may repeat: a later decision sees what an earlier one took. In Redis Cluster all must share a hash slot.
--- @arg algo enum:gcra|token_bucket|fixed_window|sliding_window|sliding_log|quota required The limit's algorithm.
--- @arg limit int required 1..1000000000000000 Units per period (gcra/token_bucket: refill rate; quota: budget up to 1e15; others up to 1e9).
--- @arg period_ms int optional 1..31622400000 Period or window in ms (all but quota).
--- @arg burst int default=limit 1..1000000000000000 gcra/token_bucket capacity.
--- @arg offset_ms int default=0 -50400000..31622400000 fixed_window: window offset (0 <= offset < period); quota: UTC offset.
--- @arg unit enum:day|week|month optional quota: the calendar period.
--- @arg tz_rules string optional maxlen=1024 quota: the time zone's rules, "off0;t1:off1;t2:off2;..." in ms (src/client/time-zone.ts builds them from an IANA zone), in place of the fixed offset_ms; empty keeps the offset. Refused (BADARG) for any other algo.
--- @arg now_ms int optional 0..140737488355328 Clock override in ms; Redis TIME when omitted (pass '' to omit).
--- @each decisions
--- @group cost int default=1 0..1000000000000000 Units this decision takes (0 is a peek that never writes).
--- @group share_ppm int default=1000000 0..1000000 This decision's priority class: the share of the capacity (burst for gcra/token_bucket, else limit) it may use, in parts per million; admitted only if capacity - floor(capacity * share_ppm / 1e6) units are left after it. 1000000 (the default) keeps nothing back.
--- @check batch_spec algo limit period_ms burst offset_ms unit decisions
--- @return now_ms int The clock reading (ms) every decision of the call used.
--- @return_each allowed int 1 if this decision's cost was admitted and taken; 0 if denied; -1 if it failed alone: its key holds another Redis type or foreign state, nothing was written, and the next field says which.
--- @return_each remaining int Whole units left on its key after this decision (allowed -1: 1 = WRONGTYPE, the key holds another Redis type; 2 = WRONGSTATE, it holds a value that is not this algorithm's state).
--- @return_each reset_after_ms int ms until its key is back to full.
--- @return_each retry_after_ms int 0 when allowed; ms until this cost would be admitted (at cost + what its class must leave); -1 never.
--- @include "lib/multi"
--- @include "lib/clock"
--- @args

local simulated = now_ms ~= nil
local spec = { algo = algo, limit = limit, period_ms = period_ms, burst = burst, offset_ms = offset_ms, unit = unit }
if tz_rules then
  if algo ~= 'quota' then rl_fail('batch', 'tz_rules is for algo quota only, got algo ' .. algo) end
  spec.zone = rl_tz_rules('batch', tz_rules)
end
local now = rl_now_ms(now_ms)
return rl_reply(rl_batch_decide(KEYS, decisions, spec, now, simulated))
