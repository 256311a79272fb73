--- @script multi
--- @version 3
--- @summary Atomic multi-limit check: N limits of any mix of algorithms, each with its own cost and parameters; either every limit admits and all consume, or none consumes. A limit of algo concurrency holds a slot for its holder (released by concurrency_release, or expired after period_ms) only when every limit admits. v2 (from v1): the algo concurrency, and two fields appended to every group (share_ppm, holder), so a group is 9 arguments instead of 7; v1's ARGV is refused (BADARG: argument count). v3 (from v2): a second fixed argument tz_rules after now_ms (time zone rules of quota limits, one entry per limit), so ARGV is now_ms, tz_rules, then the groups; v2's ARGV is refused (BADARG: argument count).
--- @key state+ One key per limit, in the order of the limits: its state key (a block key for algo block). In Redis Cluster all must share a hash slot.
--- @arg now_ms int optional 0..140737488355328 Clock override in ms; Redis TIME when omitted (pass '' to omit).
--- @arg tz_rules string optional maxlen=16384 Time zones of quota limits: one entry per limit, in order, `|`-separated, each empty (the limit keeps its offset_ms) or a time zone's rules, "off0;t1:off1;..." in ms (src/client/time-zone.ts builds them from an IANA zone; at most 1024 bytes each). Empty: no zones. A rule for a limit that is not quota, or a count of entries other than the number of limits, is refused (BADARG).
--- @each limits
--- @group algo enum:gcra|token_bucket|fixed_window|sliding_window|sliding_log|quota|block|concurrency required The limit's algorithm (block: a penalty key set by the block script; concurrency: the holder set of concurrency_acquire).
--- @group limit int default=1 1..1000000000000000 Units per period (gcra/token_bucket: refill rate; quota: budget up to 1e15; concurrency: holders at once, up to 1e6; others up to 1e9).
--- @group period_ms int optional 1..31622400000 Period or window in ms (all but quota and block; concurrency: how long a holder keeps its slot if never released).
--- @group cost int default=1 0..1000000000000000 Units this limit takes (RPM: 1, TPM: the tokens; concurrency: 1 holds a slot, 0 only asks).
--- @group burst int default=limit 1..1000000000000000 gcra/token_bucket capacity.
--- @group offset_ms int default=0 -50400000..31622400000 fixed_window: window offset (0 <= offset < period); quota: UTC offset.
--- @group unit enum:day|week|month optional quota: the calendar period.
--- @group share_ppm int default=1000000 0..1000000 Priority class: the share of this limit's capacity (burst for gcra/token_bucket, else limit) the call may use, in parts per million; the limit admits only if capacity - floor(capacity * share_ppm / 1e6) units are left after it. 1000000 (the default) keeps nothing back; block ignores it.
--- @group holder string optional maxlen=128 concurrency (required there): the holder id that takes the slot (e.g. a UUID; a live holder id again renews its slot, always admitted). Empty for other algos (ignored).
--- @check multi_items limits
--- @return allowed bool 1 if every limit admitted and all consumed; 0 if any denied and none consumed.
--- @return denied_index int 1-based index of the first limit that denied; 0 when allowed.
--- @return retry_after_ms int 0 when allowed; the longest wait any denying limit needs; -1 if one can never admit.
--- @return_each allowed bool 1 if this limit alone would admit (at cost + what its priority class must leave).
--- @return_each remaining int Whole units left on this limit: after this call's consumption when all admitted, else what it holds now.
--- @return_each reset_after_ms int ms until this limit is back to full (after this call).
--- @return_each retry_after_ms int 0 when this limit admits; else its own wait (concurrency: until enough holders expire, sooner if released); -1 never.
--- @include "lib/multi"
--- @include "lib/clock"
--- @args

rl_multi_zones('multi', tz_rules, limits)
return rl_reply(rl_multi('multi', KEYS, limits, rl_now_ms(now_ms), now_ms ~= nil, true))
