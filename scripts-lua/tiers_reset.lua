--- @script tiers_reset
--- @version 2
--- @summary Resets some limits of subjects' keys as tiers holds them (lib/tiers): their states are dropped (back to full), the other limits' kept with the key's expiry; a key left with no state is deleted. Resetting every limit of a key is deleting it (the reset script).
--- @key state+ Every subject's key to reset the limits of.
--- @arg count int required 1..16 How many limits each key holds.
--- @arg limits string required maxlen=64 Which limits to reset: their 1-based positions in specs order, comma-separated (e.g. `3`: the third, `1,3`).
--- @arg adopt string optional maxlen=1040 As tiers takes it: the named limits' own keys (a key per limit, the layout before) are deleted too, whether the key holds a value or not, so a reset is not undone by adopting them later. Empty: none.
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
local adopting = rl_tiers_adopt('tiers_reset', adopt, count)
local reset = 0
for d = 1, #KEYS do
  local key = KEYS[d]
  local stored = rl_call('GET', key)
  local segs = stored and rl_tiers_split('tiers_reset', key, stored, count)
  local own = adopting and rl_tiers_own_keys(key, adopting)
  local left = false
  for j = 1, count do
    local cleared = false
    if which[j] then
      if own and rl_call('DEL', own[j]) == 1 then
        cleared = true
        redis.pcall('PUBLISH', 'redlimit:invalidate', own[j])
      end
      if segs and segs[j] then cleared = true end
      if segs then segs[j] = '' end
      if cleared then reset = reset + 1 end
    elseif segs then
      if segs[j] then left = true else segs[j] = '' end
    end
  end
  if stored then
    if left then rl_call('SET', key, table.concat(segs, '|'), 'KEEPTTL') else rl_call('DEL', key) end
  end
  redis.pcall('PUBLISH', 'redlimit:invalidate', key)
end
return rl_reply({ reset })
