--- Concurrency leases: a sorted set of lease ids scored by when each lease expires (its holder
--- died or forgot to release). At most `limit` live leases per key.
--- @include "lib/args"
--- @include "lib/clock"

--- Drops expired leases; returns how many are live.
local function rl_concurrency_live(key, now, trim)
  if trim then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', string.format('%d', now))
    return redis.call('ZCARD', key)
  end
  return redis.call('ZCOUNT', key, string.format('(%d', now), '+inf')
end

--- ms until the last live lease expires (0 when none): the key's TTL.
local function rl_concurrency_reset(key, now)
  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if #last == 0 then return 0 end
  return math.max(tonumber(last[2]) - now, 0)
end

local function rl_concurrency_expire(key, now, simulated)
  local reset = rl_concurrency_reset(key, now)
  if reset > 0 then
    local _, expire_cmd, at = rl_expiry(now, reset, simulated)
    redis.call(expire_cmd, key, at)
  end
  return reset
end
