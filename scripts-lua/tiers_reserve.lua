--- @script tiers_reserve
--- @version 2
--- @summary reserve for a subject's key as tiers holds it (lib/tiers): an estimate on every limit of the key, all-or-nothing as tiers decides, remembered under a reservation key until tiers_settle commits the actual or cancels (or the reservation expires and counts at its estimate). The record is reserve's (lib/reservation): the limits' parameters and estimates, each quota's calendar period, and the one state key; a replay of the same reservation while it lives is admitted again and takes nothing more.
--- @key record The reservation's own key, `<prefix>:{<tag>}:!rsv:<rid>` with a random 128-bit rid: same hash slot as the state key. Expires after ttl_ms.
--- @key state The subject's key holding every limit of `specs` (as tiers takes it).
--- @arg ttl_ms int required 1..86400000 How long the reservation may stay unsettled (at most a day).
--- @arg count int required 1..16 How many limits the key holds (the number of specs).
--- @arg specs string required maxlen=2048 The limits, as tiers takes them.
--- @arg now_ms int optional 0..140737488355328 Clock override in ms; Redis TIME when omitted (pass '' to omit).
--- @arg tz_rules string optional maxlen=16384 Time zones of quota specs, as tiers takes them.
--- @arg adopt string optional maxlen=1040 The upgrade from a key per limit, as tiers takes it. Empty: no adoption.
--- @each limits
--- @group cost int default=1 0..1000000000000000 The estimate this limit takes now (RPM: 1, TPM: the estimated tokens), one group per spec in order.
--- @group share_ppm int default=1000000 0..1000000 The call's priority class on this limit (as multi's share_ppm); 1000000: none.
--- @check tiers_items count specs limits
--- @return allowed int 1 if every limit admitted its estimate (all taken, the record written); 0 if any denied (nothing taken, nothing written).
--- @return denied_index int 1-based index of the first limit that denied; 0 when allowed.
--- @return retry_after_ms int 0 when allowed; the longest wait any denying limit needs; -1 if one never can.
--- @return_each allowed int 1 if this limit alone would admit its estimate.
--- @return_each remaining int Whole units left on this limit after the reservation when allowed, else what it holds now.
--- @return_each reset_after_ms int ms until this limit is back to full.
--- @return_each retry_after_ms int 0 when this limit admits; else its own wait; -1 never.
--- @include "lib/tiers"
--- @include "lib/reservation"
--- @include "lib/clock"
--- @args

local record_key, key = KEYS[1], KEYS[2]
if key == record_key then rl_fail('tiers_reserve', 'the record key is also the state key') end
local now = rl_now_ms(now_ms)
local simulated = now_ms ~= nil
local groups = limits
limits = rl_multi_batch_specs('tiers_reserve', count, specs)
rl_multi_zones('tiers_reserve', tz_rules, limits)
local adopting = rl_tiers_adopt('tiers_reserve', adopt, count)
local decision = { cost_list = {}, share_list = {} }
for j = 1, count do
  limits[j].cost = groups[j].cost
  decision.cost_list[j], decision.share_list[j] = groups[j].cost, groups[j].share_ppm
end
local body = rl_rsv_specs(limits) .. '\n' .. rl_rsv_keys(KEYS)

local held, _, held_body = rl_rsv_read('tiers_reserve', record_key, now)
local replay = held == 'record' and held_body == body
if held and not replay then
  rl_fail('tiers_reserve', 'reservation key ' .. record_key .. ' already holds another reservation or a settled one (ids are never reused)')
end
local reply = { 1, 0, 0 }
if replay then
  -- The same reservation again: admitted, nothing more taken; what each limit holds now.
  local zeros = {}
  for j = 1, count do zeros[j] = 0 end
  local evals, caps = rl_tiers_evaluators(limits)
  rl_tiers_run(rl_tiers_decide, 'tiers_reserve', key, { cost_list = zeros }, evals, caps, now, simulated, false, reply, 3, adopting, limits)
  for j = 1, count do reply[4 * j], reply[4 * j + 3] = 1, 0 end
  return rl_reply(reply)
end
local evals, caps = rl_tiers_evaluators(limits)
rl_tiers_run(rl_tiers_decide, 'tiers_reserve', key, decision, evals, caps, now, simulated, true, reply, 3, adopting, limits)
for j = 1, count do
  local r = 4 * j
  if reply[r] ~= 1 then
    if reply[1] == 1 then reply[1], reply[2] = 0, j end
    local retry = reply[r + 3]
    if retry < 0 or reply[3] < 0 then reply[3] = -1 elseif retry > reply[3] then reply[3] = retry end
  end
end
if reply[1] == 1 then
  local set_opt, _, at = rl_expiry(now, ttl_ms, simulated)
  redis.call('SET', record_key, string.format('r:%d:', now + ttl_ms) .. rl_rsv_periods(limits, now) .. body, set_opt, at)
end
return rl_reply(reply)
