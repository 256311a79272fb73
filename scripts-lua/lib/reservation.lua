--- Reservation records: what reserve took, kept under the reservation's own key until settle
--- replaces it by a tombstone. Both are plain strings (one GET, one SET):
---   record     "r:<deadline_ms>:[<periods>#]<specs>\n<keys>"
---              specs = "algo,limit,period_ms,burst,offset_ms,unit,estimate;..."
---              periods (reserve v3; only when some limit is a quota) = one entry per limit,
---              `|`-separated: "<start_ms>,<end_ms>" of the calendar period a quota limit was
---              reserved in (in its time zone, if it had one), empty for any other algorithm.
---   tombstone  "s:<deadline_ms>:<c|x>"          c: committed, x: cancelled
--- keys is every state key as "<length>:<key>", concatenated, so settle compares its KEYS with one
--- string comparison and no key can be confused with two others. The deadline is in the value, not
--- only in the TTL, so a caller clock (now_ms, where TTLs carry grace) expires a record exactly.
--- A replay compares specs and keys only (not periods): a retry in the next period is the same
--- reservation. A record of reserve v2 has no periods (settle decides its quotas at its own now).
--- @include "lib/args"
--- @include "lib/clock"
--- @include "lib/calendar"

--- Settle's status codes (settle.lua's header states them).
local RL_RSV_UNKNOWN = 0
local RL_RSV_COMMITTED = 1
local RL_RSV_CANCELLED = 2
local RL_RSV_SETTLED = 3
local RL_RSV_MISMATCH = 4

--- A tombstone lives at least this long (ms), so a settle retried minutes later still hears
--- "already settled" rather than "unknown".
local RL_RSV_TOMBSTONE_MS = 600000

--- The state keys of a call (KEYS[2..]) as one string: "<length>:<key>" each.
local function rl_rsv_keys(keys)
  local parts = {}
  for i = 2, #keys do parts[i - 1] = #keys[i] .. ':' .. keys[i] end
  return table.concat(parts)
end

--- What reserve stores of each limit: its parameters (defaults applied) and its estimate.
local function rl_rsv_specs(items)
  local parts = {}
  for i = 1, #items do
    local it = items[i]
    local period = ''
    if it.period_ms then period = string.format('%d', it.period_ms) end
    parts[i] = string.format('%s,%d,%s,%d,%d,%s,%d', it.algo, it.limit, period, it.burst, it.offset_ms, it.unit or '', it.cost)
  end
  return table.concat(parts, ';')
end

--- The stored specs as items (cost = the estimate), in order.
local function rl_rsv_parse_specs(script, key, specs)
  local items = {}
  for algo, limit, period, burst, offset, unit, estimate in string.gmatch(specs, '([%l_]+),(%d+),(%d*),(%d+),(%-?%d+),(%l*),(%d+)') do
    local it = { algo = algo, limit = tonumber(limit), period_ms = tonumber(period), burst = tonumber(burst), offset_ms = tonumber(offset), cost = tonumber(estimate) }
    if unit ~= '' then it.unit = unit end
    items[#items + 1] = it
  end
  if #items == 0 then rl_fail_state(script, key) end
  return items
end

--- The periods section of a record for these items at `now` (each item's zone as rl_multi_zones
--- set it, else its offset_ms): '' when no item is a quota (such a record is as v2's), else one
--- entry per item and a closing '#'.
local function rl_rsv_periods(items, now)
  local parts, any = {}, false
  for i = 1, #items do
    local it = items[i]
    if it.algo == 'quota' then
      local start, period_end = rl_calendar_period(now, it.unit, it.zone or it.offset_ms)
      parts[i] = string.format('%d,%d', start, period_end)
      any = true
    else
      parts[i] = ''
    end
  end
  if not any then return '' end
  return table.concat(parts, '|') .. '#'
end

--- The periods of a record (rl_rsv_periods' string without its '#') onto its parsed items:
--- item.start and item.period_end for each quota item. Anything else is foreign state.
local function rl_rsv_parse_periods(script, key, periods, items)
  local i = 0
  for entry in string.gmatch(periods .. '|', '([^|]*)|') do
    i = i + 1
    local it = items[i]
    if it == nil then rl_fail_state(script, key) end
    if entry ~= '' then
      local start, period_end = string.match(entry, '^(%-?%d+),(%-?%d+)$')
      if not start or it.algo ~= 'quota' then rl_fail_state(script, key) end
      it.start, it.period_end = tonumber(start), tonumber(period_end)
    end
  end
  if i ~= #items then rl_fail_state(script, key) end
end

--- Replaces a settled reservation's record by its tombstone ('c' committed, 'x' cancelled),
--- living as long as the reservation would have, and at least RL_RSV_TOMBSTONE_MS.
local function rl_rsv_tombstone(record_key, deadline, now, simulated, cancel)
  local tomb = math.max(deadline - now, RL_RSV_TOMBSTONE_MS)
  local set_opt, _, at = rl_expiry(now, tomb, simulated)
  local mark = 'c'
  if cancel then mark = 'x' end
  redis.call('SET', record_key, string.format('s:%d:', now + tomb) .. mark, set_opt, at)
end

--- What the reservation key holds at `now`: 'record', deadline, body (specs "\n" keys), periods
--- (nil: a record without them); or 'tombstone', deadline, mode; or nil when absent or past its
--- deadline.
local function rl_rsv_read(script, key, now)
  local stored = redis.call('GET', key)
  if not stored then return nil end
  local kind, deadline, rest = string.match(stored, '^([rs]):(%d+):(.*)$')
  if not kind then rl_fail_state(script, key) end
  deadline = tonumber(deadline)
  if now > deadline then return nil end
  if kind == 'r' then
    local periods, body = string.match(rest, '^([%d,|%-]*)#(.*)$')
    if periods then return 'record', deadline, body, periods end
    return 'record', deadline, rest
  end
  return 'tombstone', deadline, rest
end
