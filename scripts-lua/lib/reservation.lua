--- Reservation records: what reserve took, kept under the reservation's own key until settle
--- replaces it by a tombstone. Both are plain strings (one GET, one SET):
---   record     "r:<deadline_ms>:<specs>\n<keys>"  specs = "algo,limit,period_ms,burst,offset_ms,unit,estimate;..."
---   tombstone  "s:<deadline_ms>:<c|x>"          c: committed, x: cancelled
--- keys is every state key as "<length>:<key>", concatenated, so settle compares its KEYS with one
--- string comparison and no key can be confused with two others. The deadline is in the value, not
--- only in the TTL, so a caller clock (now_ms, where TTLs carry grace) expires a record exactly.
--- @include "lib/args"
--- @include "lib/clock"

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

--- What the reservation key holds at `now`: 'record', deadline, body (specs "\n" keys); or
--- 'tombstone', deadline, mode; or nil when absent or past its deadline.
local function rl_rsv_read(script, key, now)
  local stored = redis.call('GET', key)
  if not stored then return nil end
  local kind, deadline, rest = string.match(stored, '^([rs]):(%d+):(.*)$')
  if not kind then rl_fail_state(script, key) end
  deadline = tonumber(deadline)
  if now > deadline then return nil end
  if kind == 'r' then return 'record', deadline, rest end
  return 'tombstone', deadline, rest
end
