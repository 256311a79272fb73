--- @script reserve
--- @version 3
--- @summary Reserve an estimate on N limits at once, all-or-nothing like multi, and remember what was taken under a reservation key until settle commits the actual or cancels (or the reservation expires and counts at its estimate). v2 (from v1): a group field share_ppm (the call's priority class, as in multi), so a group is 8 arguments instead of 7; v1's ARGV is refused (BADARG: argument count). v3 (from v2): a fixed argument tz_rules after now_ms (time zone rules of quota limits, one entry per limit, as multi v3 takes them), so ARGV is ttl_ms, now_ms, tz_rules, then the groups; v2's ARGV is refused (BADARG: argument count). The record keeps each quota limit's calendar period [start, end) as reserved, so settle gives back to and charges that period only (settle v3).
--- @key record The reservation's own key, `<prefix>:{<tag>}:!rsv:<rid>` with a random 128-bit rid: same hash slot as the state keys. Holds the record (what was taken, and the calendar period of each quota limit) until settle replaces it by a tombstone; expires after ttl_ms.
--- @key state+ One key per limit, in the order of the limits: its state key (a block key for algo block). In Redis Cluster all must share a hash slot with the record key.
--- The decision is multi's: every limit takes its estimate, or none does and nothing is written (not
--- even the record). An estimate larger than a limit can ever hold is refused with retry -1. Algorithms:
--- every one that can give units back (gcra, token_bucket, fixed_window, sliding_window, quota);
--- block is a gate only (a blocked subject cannot reserve; settle leaves it alone); sliding_log is
--- refused (it cannot refund). A reservation nobody settles expires after ttl_ms and its units stay
--- taken: it counts at its estimate.
--- Replays: the same record key with the same limits, keys and estimates while the reservation
--- lives is the same reservation (a retry whose first reply was lost): it is admitted again and
--- takes nothing more. A record key that holds another reservation, or one already settled, is
--- refused (BADARG): reservation ids are never reused.
--- A quota limit is decided in its time zone when tz_rules names one (else at its offset_ms), and
--- the record keeps the period it was reserved in: settle touches that period only (the zone is
--- not needed to settle). The zone is not part of the reservation's identity: a replay with rules
--- built again is the same reservation.
--- @arg ttl_ms int required 1..86400000 How long the reservation may stay unsettled (at most a day).
--- @arg now_ms int optional 0..140737488355328 Clock override in ms; Redis TIME when omitted (pass '' to omit).
--- @arg tz_rules string optional maxlen=16384 Time zones of quota limits, as multi takes them: one entry per limit, in order, `|`-separated, each empty (the limit keeps its offset_ms) or a time zone's rules, "off0;t1:off1;..." in ms (src/client/time-zone.ts builds them from an IANA zone; at most 1024 bytes each). Empty: no zones. A rule for a limit that is not quota, or a count of entries other than the number of limits, is refused (BADARG) and nothing is written.
--- @each limits
--- @group algo enum:gcra|token_bucket|fixed_window|sliding_window|quota|block required The limit's algorithm (block: a penalty key set by the block script).
--- @group limit int default=1 1..1000000000000000 Units per period (gcra/token_bucket: refill rate; quota: budget up to 1e15; others up to 1e9).
--- @group period_ms int optional 1..31622400000 Period or window in ms (all but quota and block).
--- @group cost int default=1 0..1000000000000000 The estimate this limit takes now (RPM: 1, TPM: the estimated tokens).
--- @group burst int default=limit 1..1000000000000000 gcra/token_bucket capacity.
--- @group offset_ms int default=0 -50400000..31622400000 fixed_window: window offset (0 <= offset < period); quota: UTC offset.
--- @group unit enum:day|week|month optional quota: the calendar period.
--- @group share_ppm int default=1000000 0..1000000 Priority class: the share of this limit's capacity (burst for gcra/token_bucket, else limit) the reservation may use, in parts per million; the limit admits only if capacity - floor(capacity * share_ppm / 1e6) units are left after the estimate. 1000000 (the default) keeps nothing back; block ignores it. Not part of the record: a replay is the same reservation whatever class it names, and settle gives back what was taken.
--- @check multi_items limits
--- @return allowed bool 1 if every limit admitted: the estimates are taken and the reservation recorded; 0 if any denied and nothing was written.
--- @return denied_index int 1-based index of the first limit that denied; 0 when allowed.
--- @return retry_after_ms int 0 when allowed; the longest wait any denying limit needs; -1 if an estimate can never fit.
--- @return_each allowed bool 1 if this limit alone would admit.
--- @return_each remaining int Whole units left on this limit: after the reservation when all admitted, else what it holds now.
--- @return_each reset_after_ms int ms until this limit is back to full (after this call).
--- @return_each retry_after_ms int 0 when this limit admits; else its own wait; -1 never.
--- @include "lib/multi"
--- @include "lib/reservation"
--- @include "lib/clock"
--- @args

local record_key = KEYS[1]
local state_keys = {}
for i = 2, #KEYS do
  if KEYS[i] == record_key then rl_fail('reserve', string.format('the record key is also the state key of limit %d', i - 1)) end
  state_keys[i - 1] = KEYS[i]
end
rl_multi_zones('reserve', tz_rules, limits)
local now = rl_now_ms(now_ms)
local simulated = now_ms ~= nil
local body = rl_rsv_specs(limits) .. '\n' .. rl_rsv_keys(KEYS)

local held, _, held_body = rl_rsv_read('reserve', record_key, now)
if held == 'record' and held_body == body then
  -- The same reservation again: admitted, nothing more taken; what each limit holds now.
  local reply = { 1, 0, 0 }
  for i = 1, #limits do
    local item = limits[i]
    item.cost = 0
    local _, remaining, reset = rl_multi_item(state_keys[i], item, now, simulated, false)
    reply[#reply + 1] = 1
    reply[#reply + 1] = remaining
    reply[#reply + 1] = reset
    reply[#reply + 1] = 0
  end
  return rl_reply(reply)
elseif held then
  rl_fail('reserve', 'reservation key ' .. record_key .. ' already holds another reservation or a settled one (ids are never reused)')
end

local reply = rl_multi('reserve', state_keys, limits, now, simulated, true)
if reply[1] == 1 then
  local set_opt, _, at = rl_expiry(now, ttl_ms, simulated)
  redis.call('SET', record_key, string.format('r:%d:', now + ttl_ms) .. rl_rsv_periods(limits, now) .. body, set_opt, at)
end
return rl_reply(reply)
