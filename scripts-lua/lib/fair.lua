--- Fair share of one shared limit among tenants: who is active, with what weight, and how much
--- each has taken in the current window. Two keys beside the shared limit's own state:
---   tenants  hash: W = total weight of the active tenants, w:<tenant> = its weight,
---            u:<tenant> = "window_start_ms:used" (what it took in that window)
---   active   sorted set: tenant -> ms it last asked (admitted or not)
--- A tenant is active at `now` while now - last_asked < active_window_ms. Every loop here is
--- bounded by the active set, which is bounded by max_tenants.
--- @include "lib/args"
--- @include "lib/clock"

--- Drops the tenants that are no longer active (their weight, usage and membership).
local function rl_fair_trim(tenants_key, active_key, now, active_window_ms)
  local gone = redis.call('ZRANGEBYSCORE', active_key, '-inf', string.format('%d', now - active_window_ms))
  if #gone == 0 then return end
  local fields = {}
  for i = 1, #gone do fields[i] = 'w:' .. gone[i] end
  local weights = redis.call('HMGET', tenants_key, rl_unpack(fields))
  local drop = 0
  for i = 1, #gone do
    drop = drop + (tonumber(weights[i]) or 0)
    fields[#gone + i] = 'u:' .. gone[i]
  end
  redis.call('HDEL', tenants_key, rl_unpack(fields))
  redis.call('HINCRBY', tenants_key, 'W', string.format('%d', -drop))
  redis.call('ZREM', active_key, rl_unpack(gone))
end

--- Units taken in the window starting at `start`, from a stored "start:used" (0 otherwise).
local function rl_fair_used(tenants_key, stored, start)
  if not stored then return 0 end
  local s, u = string.match(stored, '^(%d+):(%d+)$')
  if not s then rl_fail_state('fair_share', tenants_key) end
  if tonumber(s) ~= start then return 0 end
  return tonumber(u)
end

--- floor(limit * weight / total): limit <= 1e9 and weight <= 1e6 keep the product exact.
local function rl_fair_share(limit, weight, total)
  local p = limit * weight
  return (p - math.fmod(p, total)) / total
end

--- What the active tenants other than `tenant` are still owed in this window:
--- sum of max(0, share - used). Stops early once it passes `cap` (the answer is then > cap).
local function rl_fair_owed(tenants_key, active_key, tenant, limit, total, start, cap)
  local members = redis.call('ZRANGE', active_key, 0, -1)
  local fields = {}
  for i = 1, #members do
    fields[2 * i - 1] = 'w:' .. members[i]
    fields[2 * i] = 'u:' .. members[i]
  end
  if #fields == 0 then return 0 end
  local values = redis.call('HMGET', tenants_key, rl_unpack(fields))
  local owed = 0
  for i = 1, #members do
    if members[i] ~= tenant then
      local w = tonumber(values[2 * i - 1]) or 0
      local left = rl_fair_share(limit, w, total) - rl_fair_used(tenants_key, values[2 * i], start)
      if left > 0 then
        owed = owed + left
        if owed > cap then return owed end
      end
    end
  end
  return owed
end
