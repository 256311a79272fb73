--- @script tiers_reset
--- @version 1
--- @summary Resets some limits of subjects' keys as tiers holds them (lib/tiers): their states are dropped (back to full), the other limits' kept with the key's expiry; a key left with no state is deleted. Resetting every limit of a key is deleting it (the reset script).
--- @key state+ Every subject's key to reset the limits of.
--- @arg count int required 1..16 How many limits each key holds.
--- @arg limits string required maxlen=64 Which limits to reset: their 1-based positions in specs order, comma-separated (e.g. `3`: the third, `1,3`).
--- Publishes each key of KEYS on the channel redlimit:invalidate after the change, as reset does,
--- so other instances drop what they cached about it (pcall: an ACL without PUBLISH still resets).
--- @return reset int How many of the named limits held state, over every key.
--- @include "lib/tiers"
--- @args

local which = {}
for field in string.gmatch(limits .. ',', '([^,]*),') do
  local j = tonumber(field)
  if not string.find(field, '^%d+$') or j < 1 or j > count then
    rl_fail('tiers_reset', string.format('limits must be positions 1..%d, comma-separated, got "%s"', count, string.sub(limits, 1, 64)))
  end
  which[j] = true
end
local reset = 0
for d = 1, #KEYS do
  local key = KEYS[d]
  local stored = rl_call('GET', key)
  if stored then
    local segs = rl_tiers_split('tiers_reset', key, stored, count)
    local left = false
    for j = 1, count do
      if which[j] then
        if segs[j] then reset = reset + 1 end
        segs[j] = ''
      elseif segs[j] then
        left = true
      else
        segs[j] = ''
      end
    end
    if left then rl_call('SET', key, table.concat(segs, '|'), 'KEEPTTL') else rl_call('DEL', key) end
  end
  redis.pcall('PUBLISH', 'redlimit:invalidate', key)
end
return rl_reply({ reset })
