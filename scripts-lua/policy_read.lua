--- @script policy_read
--- @version 1
--- @summary Reads the global policy version and any number of policy entries (or adaptive states) in one atomic call: one consistent snapshot.
--- @readonly
--- @key version The global policy version `<prefix>:{policies}:version`.
--- @key entries+ The keys to read: policy entries `<prefix>:{policies}:doc:<name>`, adaptive states `<prefix>:{policies}:adaptive:<target>`. Same {policies} slot.
--- The reply is the version, the server time, then one string per entry key in order ('' when absent).
--- @return version int The global policy version (0 when no change was ever made).
--- @return now_ms int Redis server time, ms.
--- @include "lib/clock"
--- @args

local out = { tonumber(redis.call('GET', KEYS[1]) or '0') or 0, rl_now_ms(nil) }
for i = 2, #KEYS do
  out[i + 1] = redis.call('GET', KEYS[i]) or ''
end
return out
