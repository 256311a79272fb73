--- @script settle
--- @version 3
--- @summary Settle a reservation made by reserve: commit the actual use (give back what was over-estimated, charge what was under-estimated) or cancel (give everything back), once. v2: an empty actual means the estimate (a limit the caller does not settle, e.g. RPM beside TPM). v3 (from v2; same ARGV): a quota limit is settled in the calendar period the reservation was made in (reserve v3 records it, in the quota's time zone if it had one); once that period has ended the quota is left alone (it counts at its estimate in its period, as an expired reservation does): nothing is given to or charged on a later period. v2 gave back to and charged the period of settle's own clock.
--- @key record The reservation's key, as reserve was given it.
--- @key state+ The same state keys as reserve was given, in the same order.
--- Status (the reply's first field):
---   0 unknown: no live reservation under the record key (never made, expired after ttl_ms and so
---     counted at its estimate, or its key deleted). Nothing written.
---   1 committed / 2 cancelled: settled now; the record is replaced by a tombstone.
---   3 already settled: a tombstone is there (a commit or cancel came first). Nothing written.
---   4 mismatch: the record was made for other state keys (another subject's handle, other limits,
---     or another order). Nothing written; the reservation stays as it was.
--- Settling uses the limits' parameters as reserve recorded them (a limit reconfigured since is
--- settled as it was taken). A quota limit is settled in the calendar period it was reserved in
--- (reserve recorded [start, end), in its time zone: settle needs no zone); when settle comes at or
--- after that period's end, the quota is not touched (its reply fields are -1): the reserved units
--- stayed taken in their period, which is over, and the next period owes nothing (neither a
--- give-back nor a charge). A record of reserve v2 (no periods) is settled in the period of
--- settle's now at the quota's offset_ms, as settle v2 did. Per limit, delta = actual - estimate
--- (cancel: -estimate):
---   delta < 0: -delta is given back, never above full (the algorithm's refund).
---   delta > 0: delta is charged. overage=cap charges at most what is left now. overage=debt may
---     take the limit below empty, so later calls wait until the debt is repaid; the debt is bounded
---     by one capacity: gcra and token_bucket hold at least -burst units (repaid by refill, within
---     2 * burst * period_ms / limit of the charge); fixed_window and quota count at most 2 * limit
---     in the current window (the debt ends with it); sliding_window counts at most limit over
---     the limit in the current window (it weighs on the next one, and is gone two windows on).
---     A charge beyond the bound is not charged.
---   delta = 0, block items and quotas whose reserved period has ended: the limit is not read or
---     written (its reply fields are -1).
--- The tombstone lives as long as the reservation would have, and at least 10 minutes.
--- Publishes each state key it changed (given back or charged) on the channel redlimit:refund, as
--- the refund scripts do: other instances drop the denials they cached (one may pass now) and what
--- their fallback learned of the key; their leases stay (units already taken stay taken). PUBLISH
--- takes no key: a Cluster broadcasts it. pcall: a client whose ACL forbids PUBLISH still settles.
--- @arg mode enum:commit|cancel required commit: settle at the actuals; cancel: give every estimate back (actuals ignored).
--- @arg overage enum:debt|cap default=debt What an actual above its estimate does: debt (charge it, below empty if need be) or cap (charge at most what is left).
--- @arg now_ms int optional 0..140737488355328 Clock override in ms; Redis TIME when omitted (pass '' to omit).
--- @each actuals
--- @group actual int optional 0..1000000000000000 Units this limit really used (RPM: 1, TPM: the tokens); empty: exactly its estimate (nothing to settle on it); cancel: any, e.g. 0.
--- @return status int 0 unknown, 1 committed, 2 cancelled, 3 already settled, 4 mismatch.
--- @return_each remaining int Whole units left on this limit after settling (0 while in debt); -1 when this settle did not touch it (actual = estimate, a block item, or nothing settled).
--- @return_each reset_after_ms int ms until this limit is back to full; -1 when this settle did not touch it.
--- @include "lib/reservation"
--- @include "lib/charge"
--- @include "lib/clock"
--- @args

local record_key = KEYS[1]
local n = #KEYS - 1
local now = rl_now_ms(now_ms)

local function unsettled(status)
  local reply = { status }
  for i = 1, n do
    reply[2 * i], reply[2 * i + 1] = -1, -1
  end
  return reply
end

--- A quota in the period [item.start, item.period_end) reserve recorded: give back (delta < 0)
--- or charge (delta > 0) that period's count; nil once the period has ended (not touched).
local function settle_quota(key, item, delta, debt, now, simulated)
  if now >= item.period_end then return nil end
  local start, period_end = item.start, item.period_end
  if delta > 0 then
    return rl_counter_charge('quota', key, item.limit, start, period_end, delta, debt, now, simulated)
  end
  local used = math.max(rl_counter_read('quota', key, start) + delta, 0)
  local reset = 0
  if used > 0 then reset = period_end - now end
  return math.max(item.limit - used, 0), reset, rl_counter_writes(key, start, period_end, used, now, simulated)
end

local held, deadline, body, periods = rl_rsv_read('settle', record_key, now)
if not held then return unsettled(RL_RSV_UNKNOWN) end
if held == 'tombstone' then return unsettled(RL_RSV_SETTLED) end
local split = string.find(body, '\n', 1, true)
if not split or string.sub(body, split + 1) ~= rl_rsv_keys(KEYS) then return unsettled(RL_RSV_MISMATCH) end
local items = rl_rsv_parse_specs('settle', record_key, string.sub(body, 1, split - 1))
if #items ~= n then rl_fail_state('settle', record_key) end
if periods then rl_rsv_parse_periods('settle', record_key, periods, items) end

local simulated = now_ms ~= nil
local cancel = mode == 'cancel'
local debt = overage == 'debt'
local reply = { RL_RSV_COMMITTED }
if cancel then reply[1] = RL_RSV_CANCELLED end
-- Everything is read and decided before anything is written: a key that fails (another type,
-- foreign state) fails the whole settle with nothing changed, and it can be retried.
local pending = {}
for i = 1, n do
  local item, key = items[i], KEYS[i + 1]
  local remaining, reset = -1, -1
  local delta = 0
  if item.algo ~= 'block' then
    if cancel then delta = -item.cost
    elseif actuals[i].actual ~= nil then delta = actuals[i].actual - item.cost end
  end
  local writes
  if delta ~= 0 and item.period_end then
    remaining, reset, writes = settle_quota(key, item, delta, debt, now, simulated)
    if writes then
      pending[#pending + 1] = { key, writes }
    else
      remaining, reset = -1, -1
    end
  elseif delta < 0 then
    remaining, reset, writes = rl_charge_refund(key, item, -delta, now, simulated)
    pending[#pending + 1] = { key, writes }
  elseif delta > 0 then
    remaining, reset, writes = rl_charge(key, item, delta, debt, now, simulated)
    pending[#pending + 1] = { key, writes }
  end
  reply[2 * i], reply[2 * i + 1] = remaining, reset
end
for i = 1, #pending do
  rl_apply(pending[i][2])
  redis.pcall('PUBLISH', 'redlimit:refund', pending[i][1])
end

rl_rsv_tombstone(record_key, deadline, now, simulated, cancel)
return rl_reply(reply)
