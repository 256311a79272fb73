--- @script reset
--- @version 1
--- @summary Resets limits: deletes their state keys (any algorithm), so each is back to full. Also lifts blocks and drops leases.
--- @key state+ Every state key to reset.
--- @return deleted int How many keys held state.
--- @include "lib/args"
--- @args

return rl_reply({ redis.call('DEL', rl_unpack(KEYS)) })
