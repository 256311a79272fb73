--- @script tiers_peek
--- @version 2
--- @readonly
--- @summary Read-only tiers: what a tiers call would answer now for each key, without taking anything (as multi_peek answers for per-limit keys). Runs with EVALSHA_RO and on replicas.
--- @key state+ repeats One key per decision: the subject's key holding every limit of `specs`. Keys may repeat (decided in order). In Redis Cluster all must share a hash slot.
--- @arg count int required 1..16 How many limits each decision has (the number of specs).
--- @arg specs string required maxlen=2048 The limits, `;`-separated, each `algo,limit,period_ms,burst,offset_ms,unit` with empty fields for what an algo does not take (e.g. `gcra,60,60000,10,,;sliding_window,600,3600000,,,;quota,5000,,,0,day`), as multi_batch takes them.
--- @arg now_ms int optional 0..140737488355328 Clock override in ms; Redis TIME when omitted (pass '' to omit).
--- @arg tz_rules string optional maxlen=16384 Time zones of quota specs: one entry per spec (limit), in order, `|`-separated, each empty (the limit keeps its offset_ms) or a time zone's rules, "off0;t1:off1;..." in ms (src/client/time-zone.ts builds them from an IANA zone; at most 1024 bytes each). Empty: no zones. A rule for a limit that is not quota, or a count of entries other than count, is refused (BADARG).
--- @arg adopt string optional maxlen=1040 The upgrade from a key per limit: the limits' names, `+`-joined in specs order as the key names them (e.g. `m+h+d` for `rl:{alice}:m+h+d`). A key holding nothing then reads each limit's state from the key that limit had with a key per limit: the key with that segment (right after its hash tag's `}:`) replaced by the limit's name (`rl:{alice}:m`; `rl:{t}:m+h+d:alice` -> `rl:{t}:m:alice`), in any form its own script writes, nothing written. Empty: no adoption.
--- @each decisions per=count
--- @group costs string optional maxlen=512 Units each limit takes, `count` comma-separated integers in specs order (e.g. `1,1,250`: a request, and 250 tokens of a tokens-per-day quota); each 0..1e15 (1e9 but for quota). Empty: 1 each.
--- @group shares string optional maxlen=256 Priority class per limit: `count` comma-separated share_ppm values (0..1000000: the share of the limit's capacity the call may use; the limit admits only if capacity - floor(capacity * share_ppm / 1e6) units are left after it). Empty: no class (1000000 each).
--- @check tiers_specs count specs decisions
--- @return now_ms int The clock reading (ms) every decision of the call used.
--- @return_each allowed int Per limit of each decision, in order (count results per key): 1 if this limit alone would admit its cost; 0 if not; -1 on every limit of a decision that failed alone (its key holds another Redis type or a value that is not these limits' states; nothing of the decision was written).
--- @return_each remaining int Whole units left on this limit: what it holds now (allowed -1: 1 = WRONGTYPE on the first limit, 2 = WRONGSTATE on the limit whose state cannot be read, or the first; 0 on the others).
--- @return_each reset_after_ms int ms until this limit is back to full.
--- @return_each retry_after_ms int 0 when this limit admits; else its own wait; -1 never.
--- @include "lib/tiers"
--- @include "lib/clock"
--- @args

local now = rl_now_ms(now_ms)
local plan = rl_tiers_plan('tiers_peek', count, specs, tz_rules)
return rl_reply(rl_tiers_run(rl_tiers_batch, 'tiers_peek', KEYS, decisions, plan, now, now_ms ~= nil, false, rl_tiers_adopt('tiers_peek', adopt, count)))
