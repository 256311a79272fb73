--- @script policy_history
--- @version 1
--- @summary Reads a policy's history (newest first) or, with no history key, the sorted names of the live policies.
--- @readonly
--- @key version The global policy version `<prefix>:{policies}:version`.
--- @key names The set of live policy names `<prefix>:{policies}:names`.
--- @key history+ The policy's history `<prefix>:{policies}:history:<name>` (or names again, to list names only).
--- The reply is the global version then the stored entries, newest first (what=history), or the
--- global version then the names, sorted (what=names).
--- @arg what enum:history|names required What to read.
--- @arg count int default=100 1..1000 At most this many history entries.
--- @return version int The global policy version.
--- @include "lib/args"
--- @args

local out = { tonumber(redis.call('GET', KEYS[1]) or '0') or 0 }
local list
if what == 'names' then
  list = redis.call('SMEMBERS', KEYS[2])
  table.sort(list)
else
  list = redis.call('LRANGE', KEYS[3], 0, count - 1)
end
for i = 1, #list do out[i + 1] = list[i] end
return out
