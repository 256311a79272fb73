--- @script tiers_settle
--- @version 2
--- @summary settle for a reservation tiers_reserve made on a subject's key (lib/tiers): commit the actual use (give back what was over-estimated, charge what was under-estimated) or cancel (give everything back), once, exactly as settle does per limit (same statuses, same debt rules, a quota settled in the calendar period it was reserved in) — each limit's state in the one key.
--- @key record The reservation's key, as tiers_reserve (or, see below, reserve) was given it.
--- @key state The subject's key, as tiers_reserve was given it.
--- Status (the reply's first field) as settle's: 0 unknown, 1 committed, 2 cancelled, 3 already
--- settled, 4 mismatch (the record was made for other keys, or for another number of limits).
--- The upgrade from a key per limit: with `adopt`, a record reserve made on exactly this key's
--- limits' own keys (the keys adopt names, in its order: a reservation of a key-per-limit limiter
--- of the same limits, in flight across the upgrade) is settled here, as a record of tiers_reserve
--- is: on the states in this key, or, when it holds nothing, on those adopted from the own keys
--- (which are deleted when the key is written). Any other record (other keys, another order, a
--- block key or a block item among them, no adopt) is a mismatch: nothing written.
--- The key's expiry after a change: the longest of what the changed states need and what the key
--- had left (the untouched states' needs, which a settle does not lengthen; PEXPIRETIME, Redis 7).
--- Publishes the key on the channel redlimit:refund when a state changed, as settle does.
--- @arg mode enum:commit|cancel required commit: settle at the actuals; cancel: give every estimate back (actuals ignored).
--- @arg overage enum:debt|cap default=debt What an actual above its estimate does: debt (charge it, below empty if need be) or cap (charge at most what is left).
--- @arg now_ms int optional 0..140737488355328 Clock override in ms; Redis TIME when omitted (pass '' to omit).
--- @arg adopt string optional maxlen=1040 The upgrade from a key per limit, as tiers takes it (a key of no value settles on its limits' own keys' states, moved into it when written), and a record reserve made on those own keys is settled here (above). Empty: no adoption.
--- @each actuals
--- @group actual int optional 0..1000000000000000 Units this limit really used, one group per limit in specs order (RPM: 1, TPM: the tokens); empty: exactly its estimate (nothing to settle on it); cancel: any, e.g. 0.
--- @return status int 0 unknown, 1 committed, 2 cancelled, 3 already settled, 4 mismatch.
--- @return_each remaining int Per limit: whole units left after settling (0 while in debt); -1 when this settle did not touch it.
--- @return_each reset_after_ms int ms until this limit is back to full; -1 when this settle did not touch it.
--- @include "lib/tiers"
--- @include "lib/reservation"
--- @include "lib/charge"
--- @include "lib/clock"
--- @args

local record_key, key = KEYS[1], KEYS[2]
local now = rl_now_ms(now_ms)
local count = #actuals
if count < 1 or count > 16 then rl_fail('tiers_settle', string.format('expects 1 to 16 actuals (one per limit), got %d', count)) end

local function unsettled(status)
  local reply = { status }
  for j = 1, count do reply[2 * j], reply[2 * j + 1] = -1, -1 end
  return reply
end

local held, deadline, body, periods = rl_rsv_read('tiers_settle', record_key, now)
if not held then return rl_reply(unsettled(RL_RSV_UNKNOWN)) end
if held == 'tombstone' then return rl_reply(unsettled(RL_RSV_SETTLED)) end
local split = string.find(body, '\n', 1, true)
if not split then return rl_reply(unsettled(RL_RSV_MISMATCH)) end
local recorded = string.sub(body, split + 1)
-- A record of other keys is settled here only when they are exactly this key's limits' own keys,
-- in order (reserve's record, made with a key per limit before the upgrade).
local adopting, own_record = nil, false
if recorded ~= rl_rsv_keys(KEYS) then
  adopting = rl_tiers_adopt('tiers_settle', adopt, count)
  local own = adopting and rl_tiers_own_keys(key, adopting)
  if not own then return rl_reply(unsettled(RL_RSV_MISMATCH)) end
  local keys = { record_key }
  for j = 1, #own do keys[j + 1] = own[j] end
  if recorded ~= rl_rsv_keys(keys) then return rl_reply(unsettled(RL_RSV_MISMATCH)) end
  own_record = true
end
local items = rl_rsv_parse_specs('tiers_settle', record_key, string.sub(body, 1, split - 1))
if #items ~= count then return rl_reply(unsettled(RL_RSV_MISMATCH)) end
if own_record then
  for j = 1, count do
    if not RL_TIERS_ALGOS[items[j].algo] then return rl_reply(unsettled(RL_RSV_MISMATCH)) end
  end
end
if periods then rl_rsv_parse_periods('tiers_settle', record_key, periods, items) end

local simulated = now_ms ~= nil
if not own_record then adopting = rl_tiers_adopt('tiers_settle', adopt, count) end
local cancel = mode == 'cancel'
local debt = overage == 'debt'

--- Every limit settled on its state in the key; the key written once. Everything is read and
--- decided before anything is written: a key that fails (another type, foreign state) fails the
--- whole settle with nothing changed, and it can be retried.
local function settle_all()
  local reply = { RL_RSV_COMMITTED }
  if cancel then reply[1] = RL_RSV_CANCELLED end
  local stored, adopted = rl_tiers_get('tiers_settle', key, items, count, adopting, now, simulated)
  local segs = rl_tiers_split('tiers_settle', key, stored, count)
  local ttl, changed = 0, false
  for j = 1, count do
    local item = items[j]
    local remaining, reset, writes = -1, -1, nil
    local delta = 0
    if cancel then delta = -item.cost
    elseif actuals[j].actual ~= nil then delta = actuals[j].actual - item.cost end
    if delta ~= 0 and item.period_end then
      -- A quota in the period reserve recorded; left alone once that period has ended.
      if now < item.period_end then
        if delta > 0 then
          remaining, reset, writes = rl_counter_charge('quota', key, item.limit, item.start, item.period_end, delta, debt, now, simulated, nil, segs[j])
        else
          local used = math.max(rl_counter_read('quota', key, item.start, nil, segs[j]) + delta, 0)
          reset = 0
          if used > 0 then reset = item.period_end - now end
          remaining, writes = math.max(item.limit - used, 0), rl_counter_writes(key, item.start, item.period_end, used, now, simulated)
        end
      end
    elseif delta < 0 then
      remaining, reset, writes = rl_charge_refund(key, item, -delta, now, simulated, segs[j])
    elseif delta > 0 then
      remaining, reset, writes = rl_charge(key, item, delta, debt, now, simulated, segs[j])
    end
    if writes then
      local new, seg_ttl = rl_tiers_written(now, writes)
      if new ~= nil then
        segs[j] = new
        if seg_ttl > ttl then ttl = seg_ttl end
        changed = true
      end
    end
    reply[2 * j], reply[2 * j + 1] = remaining, reset
  end
  if changed then
    -- The untouched states need no more than what the key had left: on the server clock its
    -- absolute expiry (PTTL, read after TIME, could come out a ms short each settle). States
    -- adopted from the limits' own keys: what those keys had left.
    local had = adopted or { key }
    for i = 1, #had do
      local left
      if simulated then
        left = rl_call('PTTL', had[i]) - RL_SIMULATED_GRACE_MS
      else
        left = rl_call('PEXPIRETIME', had[i]) - now
      end
      if left > ttl then ttl = left end
    end
    rl_tiers_store(key, stored, segs, count, ttl, now, simulated, adopted)
    redis.pcall('PUBLISH', 'redlimit:refund', key)
  end
  return reply
end

local reply = rl_tiers_run(settle_all)
rl_rsv_tombstone(record_key, deadline, now, simulated, cancel)
return rl_reply(reply)
