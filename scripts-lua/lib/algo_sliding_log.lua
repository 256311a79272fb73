--- Sliding log: an exact rolling window on a sorted set. One entry per admitted call, scored by
--- its time, named "<cumulative units, 16 digits>:<cost>" (zero-padded so that entries of one
--- millisecond sort in the order they were added), so the units in the window are
--- newest.cumulative - (oldest.cumulative - oldest.cost) without reading every entry. Entries
--- leave the window `period_ms` after they were admitted; each has cost >= 1, so a key never
--- holds more than `limit` entries.
--- @include "lib/args"
--- @include "lib/clock"

--- Returns (units in window, cumulative units so far). Reads only: what left the window is
--- dropped by the admitting write (the eval below), after its ZADD, so the key never goes
--- away between a decision's read and its write (on a Redis Cluster a key that vanished in a
--- migrating slot could not be written again by that call).
local function rl_sliding_log_read(key, period_ms, now)
  local since = string.format('%d', now - period_ms)
  local oldest = redis.call('ZRANGEBYSCORE', key, '(' .. since, '+inf', 'LIMIT', 0, 1)
  local used, cumulative = 0, 0
  if #oldest > 0 then
    local newest = redis.call('ZRANGE', key, -1, -1)
    local o_cum, o_cost = string.match(oldest[1], '^(%d+):(%d+)$')
    local n_cum = string.match(newest[1], '^(%d+):')
    if not o_cum or not n_cum then rl_fail_state('sliding_log', key) end
    used, cumulative = tonumber(n_cum) - tonumber(o_cum) + tonumber(o_cost), tonumber(n_cum)
  end
  return used, cumulative
end

--- ms until enough of the oldest entries leave the window to free `needed` units.
local function rl_sliding_log_wait(key, period_ms, now, needed)
  local offset = 0
  local freed = 0
  while true do
    local batch = redis.call('ZRANGEBYSCORE', key, string.format('(%d', now - period_ms), '+inf', 'WITHSCORES', 'LIMIT', offset, 128)
    if #batch == 0 then return 0 end
    for i = 1, #batch, 2 do
      freed = freed + tonumber(string.match(batch[i], ':(%d+)$'))
      if freed >= needed then return tonumber(batch[i + 1]) + period_ms - now end
    end
    offset = offset + 128
  end
end

local function rl_sliding_log_reset(key, period_ms, now)
  local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if #newest == 0 then return 0 end
  return math.max(tonumber(newest[2]) + period_ms - now, 0)
end

--- `keep` (lib/priority, nil = 0): units that must be left after the call; decided at cost + keep.
--- `trim`: an admitting write also drops the entries that left the window (after its ZADD).
local function rl_sliding_log_eval(key, limit, period_ms, cost, now, simulated, trim, keep)
  local used, cumulative = rl_sliding_log_read(key, period_ms, now)
  local reset = 0
  if used > 0 then reset = rl_sliding_log_reset(key, period_ms, now) end
  local need = cost
  if keep then need = cost + keep end
  if need > limit then return 0, limit - used, reset, -1, {} end
  if used + need > limit then
    return 0, limit - used, reset, rl_sliding_log_wait(key, period_ms, now, used + need - limit), {}
  end
  if cost == 0 then return 1, limit - used, reset, 0, {} end
  local _, expire_cmd, at = rl_expiry(now, period_ms, simulated)
  local writes = {
    { 'ZADD', key, string.format('%d', now), string.format('%016d:%d', cumulative + cost, cost) },
    { expire_cmd, key, at },
  }
  if trim then writes[3] = { 'ZREMRANGEBYSCORE', key, '-inf', string.format('%d', now - period_ms) } end
  return 1, limit - used - cost, period_ms, 0, writes
end
