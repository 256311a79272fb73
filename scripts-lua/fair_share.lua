--- @script fair_share
--- @version 1
--- @summary Fair share of one shared limit among many tenants (agents on one provider's TPM): a tenant within its weighted share is admitted whenever the shared limit has room; beyond its share it takes only capacity no other active tenant is still owed (work-conserving, never crowding out).
--- @key state The shared limit's state, in the format of its algorithm (fixed_window or sliding_window): the very key those scripts use, so their peek reads it.
--- @key tenants Hash: W (total active weight), w:<tenant> (weight), u:<tenant> ("window_start_ms:used" this window). Same hash slot as state.
--- @key active Sorted set: tenant -> ms it last asked. Same hash slot as state.
--- Decision, for tenant t of weight w asking cost c at now (window = the limit's window of period_ms
--- aligned to the epoch; used_j = what j took in this window; active = asked in the last
--- active_window_ms, this call included; share_j = floor(limit * w_j / sum of active weights)):
---   1. the shared limit must admit c (else reason 2: exhausted, or -1 retry if c > limit);
---   2. if used_t + c <= share_t: admitted (reason 0);
---   3. else admitted only if what the shared limit has left after c is at least
---      owed = sum over the other active j of max(0, share_j - used_j) (reason 1: idle capacity),
---      else denied (reason 3: that capacity is owed to others).
--- Every call (admitted or not) marks t active with weight w, unless t is new and max_tenants are
--- already active: then nothing is written and it is denied (reason 4) until the oldest leaves.
--- Guarantees (all consumption of the shared limit through this script):
---   a. the shared limit is never exceeded (it decides first, exactly as its own script);
---   b. work-conserving: a lone active tenant's share is the whole limit; a call is refused for
---      fairness only when it is beyond its share and the capacity is owed to other active tenants;
---   c. while contended (left after c < owed), no admission takes a tenant beyond its share: its
---      window usage stays <= max(share_t, what it held before the contention);
---   d. fixed_window, with the active set and weights unchanged during a window: left >= the sum of
---      every active tenant's unused share holds after every call (induction on b and c), so every
---      active tenant can take its whole share in every window, whatever the others demand.
--- Usage of a tenant is forgotten when it leaves the active set; active_window_ms >= period_ms makes
--- that harmless (its last window has ended by then). An active tenant's unused share is kept for it
--- until it leaves: the price of guarantee d.
--- @arg algo enum:fixed_window|sliding_window required The shared limit's algorithm.
--- @arg limit int required 1..1000000000 Units per window, shared by every tenant.
--- @arg period_ms int required 1..31622400000 Window length in ms (windows aligned to the epoch).
--- @arg tenant string required maxlen=256 The tenant (agent) asking.
--- @arg active_window_ms int required 1..31622400000 A tenant counts as active this long after it last asked; at least period_ms.
--- @arg cost int default=1 1..1000000000 Units this call takes.
--- @arg weight int default=1 1..1000000 The tenant's weight (its share is limit * weight / total active weight).
--- @arg max_tenants int default=1000 1..1000 At most this many tenants are active at once (the state's bound).
--- @arg now_ms int optional 0..140737488355328 Clock override in ms; Redis TIME when omitted.
--- @return allowed bool 1 if the cost was admitted and taken.
--- @return remaining int Units the shared limit has left after this call (0 for reason 4, which reads nothing more).
--- @return reset_after_ms int ms until the shared limit is back to full (0 for reason 4).
--- @return retry_after_ms int 0 when allowed; the shared limit's wait (reason 2); ms to the next window (reason 3); ms until the oldest tenant leaves (reason 4); -1 never (cost > limit).
--- @return share int This tenant's share of the limit now (0 for reason 4).
--- @return used int What this tenant has taken in this window, after this call.
--- @return active_tenants int Active tenants, this one included (reason 4: the full set).
--- @return reason int 0 within share, 1 beyond share from idle capacity, 2 shared limit exhausted, 3 capacity owed to other tenants, 4 active set full.
--- @include "lib/algo_fixed_window"
--- @include "lib/algo_sliding_window"
--- @include "lib/fair"
--- @args

if active_window_ms < period_ms then
  rl_fail('fair_share', string.format('active_window_ms must be at least period_ms (%d), got %d', period_ms, active_window_ms))
end
local state_key, tenants_key, active_key = KEYS[1], KEYS[2], KEYS[3]
local now = rl_now_ms(now_ms)
local simulated = now_ms ~= nil

rl_fair_trim(tenants_key, active_key, now, active_window_ms)
local held = redis.call('HMGET', tenants_key, 'W', 'w:' .. tenant, 'u:' .. tenant)
local total = tonumber(held[1]) or 0
local old_weight = tonumber(held[2])
local count = redis.call('ZCARD', active_key)
if not old_weight then
  if count >= max_tenants then
    local oldest = redis.call('ZRANGE', active_key, 0, 0, 'WITHSCORES')
    return rl_reply({ 0, 0, 0, tonumber(oldest[2]) + active_window_ms - now, 0, 0, count, 4 })
  end
  count = count + 1
  total = total + weight
else
  total = total + weight - old_weight
end

local start = rl_window_start(now, period_ms, 0)
local used = rl_fair_used(tenants_key, held[3], start)
local share = rl_fair_share(limit, weight, total)

local allowed, remaining, reset, retry, w_cmd, w_key, w_value, w_opt, w_at
if algo == 'fixed_window' then
  allowed, remaining, reset, retry, w_cmd, w_key, w_value, w_opt, w_at = rl_fixed_window_eval(state_key, limit, period_ms, 0, cost, now, simulated)
else
  allowed, remaining, reset, retry, w_cmd, w_key, w_value, w_opt, w_at = rl_sliding_window_eval(state_key, limit, period_ms, cost, now, simulated)
end
local reason = 0
if allowed == 0 then
  reason = 2
elseif used + cost > share then
  reason = 1
  if rl_fair_owed(tenants_key, active_key, tenant, limit, total, start, remaining) > remaining then
    -- Denied: remaining and reset as they are now (the same algorithm at cost 0 writes nothing).
    local peek_allowed
    if algo == 'fixed_window' then
      peek_allowed, remaining, reset = rl_fixed_window_eval(state_key, limit, period_ms, 0, 0, now, simulated)
    else
      peek_allowed, remaining, reset = rl_sliding_window_eval(state_key, limit, period_ms, 0, now, simulated)
    end
    allowed, reason, retry = 0, 3, start + period_ms - now
  end
end

redis.call('ZADD', active_key, 'GT', string.format('%d', now), tenant)
local _, expire_cmd, at = rl_expiry(now, active_window_ms, simulated)
if allowed == 1 then
  rl_apply_write(w_cmd, w_key, w_value, w_opt, w_at)
  used = used + cost
  redis.call('HSET', tenants_key, 'W', string.format('%d', total), 'w:' .. tenant, string.format('%d', weight), 'u:' .. tenant, string.format('%d:%d', start, used))
else
  redis.call('HSET', tenants_key, 'W', string.format('%d', total), 'w:' .. tenant, string.format('%d', weight))
end
redis.call(expire_cmd, tenants_key, at)
redis.call(expire_cmd, active_key, at)
return rl_reply({ allowed, remaining, reset, retry, share, used, count, reason })
