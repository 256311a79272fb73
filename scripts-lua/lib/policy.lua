--- @include "lib/args"
--- Policy documents: the checks every policy script makes before it stores one, and the layout of
--- a stored entry. A stored entry is one JSON object whose last member is the policy exactly as the
--- caller sent it (never re-encoded: cjson would print a large integer in %.14g and lose digits):
---   {"version":V,"timeMs":T,"op":"set","author":"..","reason":"..","carryOver":"as_is","resets":{..},"policy":<as sent>}
--- Inside an encoded string every quote is escaped, so the first `,"policy":` is the member's own.

--- The algorithms a policy limit may name (the limiter's algorithms; a test keeps them equal).
local RL_POLICY_ALGOS = {
  gcra = true, token_bucket = true, fixed_window = true, sliding_window = true,
  sliding_log = true, quota = true,
}
local RL_POLICY_FIELDS = { name = true, limits = true, remove = true, scaleBp = true, parent = true, description = true }
local RL_LIMIT_INTS = { limit = true, periodMs = true, burst = true, offsetMs = true, utcOffsetMs = true }
local RL_LIMIT_STRINGS = { name = true, algo = true, unit = true, scope = true }
local RL_POLICY_MAX_LIMITS = 16

--- A policy name: letters, digits, _ - : . (no braces: the hash tag is ours), 1 to 200 bytes.
local function rl_policy_name_ok(name)
  return type(name) == 'string' and #name >= 1 and #name <= 200 and string.find(name, '^[%w_:%.%-]+$') ~= nil
end

--- A limit name inside a policy: 1 to 50 letters, digits, _ or - (room for a reset epoch suffix).
local function rl_policy_limit_name_ok(name)
  return type(name) == 'string' and #name >= 1 and #name <= 50 and string.find(name, '^[%w_%-]+$') ~= nil
end

local function rl_policy_is_int(v, min, max)
  return type(v) == 'number' and v == math.floor(v) and v >= min and v <= max
end

--- A JSON array as cjson decodes it (an empty one decodes as an empty table).
local function rl_policy_is_array(v)
  if type(v) ~= 'table' then return false end
  local n = 0
  for k in pairs(v) do
    if type(k) ~= 'number' then return false end
    n = n + 1
  end
  return n == #v
end

--- Decodes and checks a policy document; returns its table or fails with BADARG saying why.
--- Shapes only (names, algorithms, positive integers, sizes): each algorithm's own ranges are
--- checked by the client when it compiles the resolved limits, before it sends the document.
local function rl_policy_check(script, name, body)
  local ok, t = pcall(cjson.decode, body)
  if not ok or type(t) ~= 'table' or rl_policy_is_array(t) and next(t) ~= nil then
    rl_fail(script, 'policy ' .. name .. ': the document is not a JSON object')
  end
  for k in pairs(t) do
    if not RL_POLICY_FIELDS[k] then rl_fail(script, 'policy ' .. name .. ': unknown field ' .. tostring(k)) end
  end
  if t.name ~= nil and t.name ~= name then rl_fail(script, 'policy ' .. name .. ': the document names another policy') end
  local limits = t.limits
  if limits == nil then limits = {} end
  if not rl_policy_is_array(limits) then rl_fail(script, 'policy ' .. name .. ': limits must be an array') end
  if #limits > RL_POLICY_MAX_LIMITS then rl_fail(script, 'policy ' .. name .. ': at most 16 limits') end
  local seen = {}
  for i = 1, #limits do
    local l = limits[i]
    if type(l) ~= 'table' or rl_policy_is_array(l) then rl_fail(script, 'policy ' .. name .. ': limits[' .. i .. '] is not an object') end
    if not rl_policy_limit_name_ok(l.name) then rl_fail(script, 'policy ' .. name .. ': limits[' .. i .. '].name must be 1 to 50 letters, digits, _ or -') end
    if seen[l.name] then rl_fail(script, 'policy ' .. name .. ': limit ' .. l.name .. ' is given twice') end
    seen[l.name] = true
    if not RL_POLICY_ALGOS[l.algo] then rl_fail(script, 'policy ' .. name .. ': limit ' .. l.name .. ': unknown algorithm ' .. tostring(l.algo)) end
    for k, v in pairs(l) do
      if RL_LIMIT_INTS[k] then
        if not rl_policy_is_int(v, -1e15, 1e15) then rl_fail(script, 'policy ' .. name .. ': limit ' .. l.name .. ': ' .. k .. ' must be an integer') end
      elseif RL_LIMIT_STRINGS[k] then
        if type(v) ~= 'string' then rl_fail(script, 'policy ' .. name .. ': limit ' .. l.name .. ': ' .. k .. ' must be a string') end
      else
        rl_fail(script, 'policy ' .. name .. ': limit ' .. l.name .. ': unknown field ' .. tostring(k))
      end
    end
    if not rl_policy_is_int(l.limit, 1, 1e15) then rl_fail(script, 'policy ' .. name .. ': limit ' .. l.name .. ': limit must be a positive integer') end
    if l.burst ~= nil and not rl_policy_is_int(l.burst, 1, 1e15) then rl_fail(script, 'policy ' .. name .. ': limit ' .. l.name .. ': burst must be a positive integer') end
    if l.periodMs ~= nil and not rl_policy_is_int(l.periodMs, 1, 1e15) then rl_fail(script, 'policy ' .. name .. ': limit ' .. l.name .. ': periodMs must be a positive integer') end
  end
  if t.remove ~= nil then
    if not rl_policy_is_array(t.remove) then rl_fail(script, 'policy ' .. name .. ': remove must be an array of limit names') end
    for i = 1, #t.remove do
      if not rl_policy_limit_name_ok(t.remove[i]) then rl_fail(script, 'policy ' .. name .. ': remove[' .. i .. '] is not a limit name') end
      if seen[t.remove[i]] then rl_fail(script, 'policy ' .. name .. ': limit ' .. t.remove[i] .. ' is both set and removed') end
    end
  end
  if t.scaleBp ~= nil and not rl_policy_is_int(t.scaleBp, 1, 1000000) then
    rl_fail(script, 'policy ' .. name .. ': scaleBp must be an integer from 1 to 1000000 (ten-thousandths: 8000 is x0.8)')
  end
  if t.parent ~= nil then
    if not rl_policy_name_ok(t.parent) then rl_fail(script, 'policy ' .. name .. ': parent is not a policy name') end
    if t.parent == name then rl_fail(script, 'policy ' .. name .. ': a policy cannot inherit from itself (cycle)') end
  end
  if t.description ~= nil and type(t.description) ~= 'string' then rl_fail(script, 'policy ' .. name .. ': description must be a string') end
  t.limits = limits
  return t
end

--- The policy member of a stored entry, as it was sent ('null' for a removal), or nil when the
--- entry is not one of ours.
local function rl_policy_body(entry)
  local at = string.find(entry, ',"policy":', 1, true)
  if not at or string.sub(entry, -1) ~= '}' then return nil end
  return string.sub(entry, at + 10, -2)
end

--- The metadata of a stored entry (its members but the policy), or nil when it is not one of ours.
local function rl_policy_meta(entry)
  local body = rl_policy_body(entry)
  if not body then return nil end
  local ok, meta = pcall(cjson.decode, string.sub(entry, 1, #entry - #body - 11) .. '}')
  if not ok or type(meta) ~= 'table' then return nil end
  return meta
end
