--- @script block
--- @version 1
--- @summary Penalty box: denies an id for `duration_ms` whatever its limits say, in every multi call that names this key. A longer existing block is kept; duration 0 lifts the block.
--- @key penalty The block key: the ms time the block ends. Absent means not blocked.
--- Publishes the key (as given) on the channel redlimit:invalidate on every call (also when a
--- longer block is kept: the caller counts on hearing its own call back), so other instances drop
--- what they cached about it.
--- PUBLISH takes no key: a Cluster broadcasts it. pcall: a client whose ACL forbids PUBLISH still blocks.
--- @arg duration_ms int required 0..31622400000 How long to block from now.
--- @arg now_ms int optional 0..140737488355328 Clock override in ms; Redis TIME when omitted.
--- @return blocked_until_ms int When the block ends (0 when lifted).
--- @include "lib/algo_block"
--- @include "lib/clock"
--- @args

local now = rl_now_ms(now_ms)
if duration_ms == 0 then
  redis.call('DEL', KEYS[1])
  redis.pcall('PUBLISH', 'redlimit:invalidate', KEYS[1])
  return rl_reply({ 0 })
end
local until_ms = now + duration_ms
local current = rl_block_read(KEYS[1], now)
redis.pcall('PUBLISH', 'redlimit:invalidate', KEYS[1])
if current and current > until_ms then return { current } end
local set_opt, _, at = rl_expiry(now, duration_ms, now_ms ~= nil)
redis.call('SET', KEYS[1], string.format('%d', until_ms), set_opt, at)
return rl_reply({ until_ms })
