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

--- One slot for `holder`: allowed, remaining, reset_after_ms, retry_after_ms, writes (to apply
--- if admitted). cost 1 takes a slot (a holder already live renews its slot: always admitted, it
--- takes none); cost 0 takes nothing. `keep` (lib/priority, nil = 0): slots that must be left
--- free after the call. With `trim` expired holders are dropped first (a write even when denied,
--- harmless: they count for nothing); without it nothing is written here.
local function rl_concurrency_eval(key, limit, period_ms, holder, cost, now, simulated, trim, keep)
  local live = rl_concurrency_live(key, now, trim)
  local renew = false
  if cost > 0 then
    local score = redis.call('ZSCORE', key, holder)
    if score and tonumber(score) > now then renew = true end
  end
  if not renew then
    local need = cost
    if keep then need = cost + keep end
    if need > limit then return 0, math.max(limit - live, 0), rl_concurrency_reset(key, now), -1, RL_NO_WRITES end
    if live + need > limit then
      -- Admitted once enough holders expire: the (live + need - limit)-th soonest.
      local nth = redis.call('ZRANGEBYSCORE', key, string.format('(%d', now), '+inf', 'WITHSCORES', 'LIMIT', string.format('%d', live + need - limit - 1), 1)
      return 0, math.max(limit - live, 0), rl_concurrency_reset(key, now), tonumber(nth[2]) - now, RL_NO_WRITES
    end
    if cost == 0 then return 1, limit - live, rl_concurrency_reset(key, now), 0, RL_NO_WRITES end
    live = live + 1
  end
  -- The key lives until its last holder expires: this one, or another that expires later.
  local reset = period_ms
  local last = redis.call('ZRANGE', key, -2, -1, 'WITHSCORES')
  for i = 1, #last, 2 do
    if last[i] ~= holder then
      local left = tonumber(last[i + 1]) - now
      if left > reset then reset = left end
    end
  end
  local _, expire_cmd, at = rl_expiry(now, reset, simulated)
  return 1, math.max(limit - live, 0), reset, 0, {
    { 'ZADD', key, string.format('%d', now + period_ms), holder },
    { expire_cmd, key, at },
  }
end
