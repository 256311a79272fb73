--- @script policy_set
--- @version 2
--- @summary Sets, removes or rolls back one named policy atomically: checks the document and its inheritance, bumps the global policy version, records the change in the policy's history and publishes it. v2: carry_over proportional (a new key epoch, as reset, and the entry records what to carry from: "carry" and "prev"); v1 callers send the same ARGV.
--- @key version The global policy version `<prefix>:{policies}:version` (an integer string; absent is 0).
--- @key history The policy's history `<prefix>:{policies}:history:<name>`: stored entries, newest first, at most history_max.
--- @key names The set of live policy names `<prefix>:{policies}:names`.
--- @key docs+ First the policy's own entry `<prefix>:{policies}:doc:<name>`, then its ancestors' entries through `parent`, nearest first, as the caller read them at if_version. Every key shares the {policies} hash tag: one slot.
--- Each change gets version = the global version + 1 and is stored as an entry (see lib/policy):
--- the current one under docs[1] (a removal leaves a tombstone, op "remove", so reset epochs
--- survive), and pushed onto the history. carry_over reset records the new version as the reset
--- epoch of every limit the policy sets (the client puts it in those limits' key names, so they
--- start fresh); as_is keeps the epochs (same keys: state read under the new values);
--- proportional sets new epochs as reset does and records, per limit, the epoch the policy had
--- for it before ("carry": {"<limit>": <old epoch>}) and the version of the entry it replaces
--- ("prev", 0 for none): the client carries each subject's state from the old key to the new one
--- with the same fraction left (policy_carry), once, before its first decision under the change.
--- Refused with BADARG: a bad name, a document that is not a valid policy, a parent chain that
--- comes back to the policy (cycle), a rollback to a version the history no longer holds or that
--- removed the policy, a removal of no policy. Refused with CONFLICT (read again and retry): the
--- global version is not if_version, or the parent chain is not the one in KEYS.
--- Publishes "<version> <name>" on the channel redlimit:policy (pcall: an ACL without PUBLISH
--- still changes the policy; instances then see it within their poll interval).
--- @arg op enum:set|remove|rollback required What to do.
--- @arg name string required maxlen=200 The policy's name: letters, digits, _ - : . (no braces).
--- @arg author string required maxlen=200 Who makes the change.
--- @arg reason string optional maxlen=2000 Why.
--- @arg carry_over enum:as_is|reset|proportional default=as_is What the limits' state does across the change.
--- @arg history_max int default=100 1..1000 How many entries the policy's history keeps.
--- @arg policy string optional maxlen=65536 op set: the policy document (JSON), at most 64 KiB.
--- @arg to_version int optional 1..9007199254740991 op rollback: the version whose document becomes current again.
--- @arg if_version int optional 0..9007199254740991 Apply only if the global version is still this one.
--- @arg now_ms int optional 0..140737488355328 Clock override in ms; Redis TIME when omitted.
--- @return version int The version of this change.
--- @include "lib/policy"
--- @include "lib/clock"
--- @args

local version_key, history_key, names_key, doc_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local S = 'policy_set'
if not rl_policy_name_ok(name) then
  rl_fail(S, 'a policy name is 1 to 200 letters, digits, _ - : or . (no { or }), got ' .. string.format('%q', string.sub(name, 1, 60)))
end
if string.sub(doc_key, -(#name + 1)) ~= ':' .. name then rl_fail(S, 'docs[1] must be the entry key of policy ' .. name) end
local docs_prefix = string.sub(doc_key, 1, #doc_key - #name)

local global = tonumber(redis.call('GET', version_key) or '0') or 0
if if_version and if_version ~= global then
  error({ err = string.format('CONFLICT redlimit policy_set: the policies are at version %d, not %d', global, if_version) })
end

local old_entry = redis.call('GET', doc_key)
local old = nil
if old_entry then old = rl_policy_meta(old_entry) end
local old_live = old ~= nil and old.op ~= 'remove'

local body
if op == 'set' then
  if not policy then rl_fail(S, 'op set needs a policy document') end
  body = policy
elseif op == 'rollback' then
  if not to_version then rl_fail(S, 'op rollback needs to_version') end
  local entries = redis.call('LRANGE', history_key, 0, -1)
  for i = 1, #entries do
    local meta = rl_policy_meta(entries[i])
    if meta and meta.version == to_version then
      if meta.op == 'remove' then rl_fail(S, string.format('version %d removed policy %s: remove it instead', to_version, name)) end
      body = rl_policy_body(entries[i])
      break
    end
  end
  if not body then rl_fail(S, string.format('policy %s has no version %d in its history', name, to_version)) end
else
  if not old_live then rl_fail(S, 'there is no policy named ' .. name) end
end

if body then
  local t = rl_policy_check(S, name, body)
  -- Inheritance: walk the parent chain through the entries the caller passed, refusing a cycle.
  local seen = { [name] = true }
  local parent = t.parent
  local i = 5
  while parent do
    if seen[parent] then rl_fail(S, 'policy ' .. name .. ': inheritance cycle through ' .. parent) end
    seen[parent] = true
    if KEYS[i] ~= docs_prefix .. parent then
      error({ err = 'CONFLICT redlimit policy_set: the parent chain changed since it was read' })
    end
    local entry = redis.call('GET', KEYS[i])
    local pbody = entry and rl_policy_body(entry)
    if not pbody or pbody == 'null' then break end
    local ok, pt = pcall(cjson.decode, pbody)
    if not ok or type(pt) ~= 'table' then break end
    parent = pt.parent
    i = i + 1
  end
end

local version = global + 1
local now = rl_now_ms(now_ms)
local resets = {}
if old and type(old.resets) == 'table' then
  for k, v in pairs(old.resets) do resets[k] = v end
end
local carried = ''
if body and carry_over ~= 'as_is' then
  local t = cjson.decode(body)
  local from = {}
  for _, l in ipairs(t.limits or {}) do
    from[#from + 1] = string.format('%s:%d', cjson.encode(l.name), resets[l.name] or 0)
    resets[l.name] = version
  end
  if carry_over == 'proportional' then
    local prev = 0
    if old and type(old.version) == 'number' then prev = old.version end
    carried = string.format(',"carry":{%s},"prev":%d', table.concat(from, ','), prev)
  end
end
local stored = string.format('{"version":%d,"timeMs":%d,"op":"%s","author":%s,"reason":%s,"carryOver":"%s","resets":%s%s,"policy":%s}',
  version, now, op, cjson.encode(author), cjson.encode(reason or ''), carry_over, next(resets) and cjson.encode(resets) or '{}', carried, body or 'null')

redis.call('SET', doc_key, stored)
redis.call('LPUSH', history_key, stored)
redis.call('LTRIM', history_key, 0, history_max - 1)
if body then redis.call('SADD', names_key, name) else redis.call('SREM', names_key, name) end
redis.call('SET', version_key, string.format('%d', version))
redis.pcall('PUBLISH', 'redlimit:policy', string.format('%d %s', version, name))
return rl_reply({ version })
