--- Penalty box: a key that, while it lives, denies its id whatever the limits say. Its value is
--- the ms timestamp the block ends (so a caller clock, now_ms, is honoured too).
--- @include "lib/args"

--- Blocked until (ms) or nil.
local function rl_block_read(key, now)
  local stored = redis.call('GET', key)
  if not stored then return nil end
  local until_ms = tonumber(stored)
  if not until_ms then rl_fail_state('block', key) end
  if until_ms <= now then return nil end
  return until_ms
end
