--- @script reset
--- @version 1
--- @summary Resets limits: deletes their state keys (any algorithm), so each is back to full. Also lifts blocks and drops leases.
--- @key state+ Every state key to reset.
--- Publishes each key of KEYS (as given) on the channel redlimit:invalidate after deleting, so
--- other instances drop what they cached about it. PUBLISH takes no key: a Cluster broadcasts it
--- to every node. pcall: a client whose ACL forbids PUBLISH still resets (nobody is told).
--- @return deleted int How many keys held state.
--- @include "lib/args"
--- @args

local deleted = redis.call('DEL', rl_unpack(KEYS))
for i = 1, #KEYS do redis.pcall('PUBLISH', 'redlimit:invalidate', KEYS[i]) end
return rl_reply({ deleted })
