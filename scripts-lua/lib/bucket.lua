--- The continuous-refill bucket shared by gcra and token_bucket: `burst` units of capacity,
--- refilled at `limit` units per `period_ms`. A bucket's content at a moment is kept exactly as
--- whole + frac / period_ms units (0 <= frac < period_ms); a duration as ms + num / limit ms.
--- The two scripts differ only in how they store that content, never in a decision.
--- @include "lib/args"
--- @include "lib/exact"

--- Longest a bucket may take to refill from empty: 10 years. It bounds every TTL and keeps
--- every intermediate value exact.
local RL_MAX_REFILL_MS = 315360000000

--- Reservations may put a bucket in debt by at most max_wait_ms of refill: keep that debt
--- within 1e9 units so every intermediate value stays exact.
local function rl_check_reserve_bounded(script, limit, period_ms, max_wait_ms)
  local q = rl_muldivmod(max_wait_ms, limit, period_ms)
  if q > 1000000000 then
    rl_fail(script, string.format('max_wait_ms * limit / period_ms must be at most 1000000000 units, got %d', q))
  end
end

local function rl_check_refill_bounded(script, limit, period_ms, burst)
  -- The float estimate is within a hair of the exact value: only near the bound is it worth
  -- computing exactly.
  if (burst + 0.0) * period_ms < limit * RL_MAX_REFILL_MS * 0.999 then return end
  local q, r = rl_muldivmod(burst, period_ms, limit)
  if r > 0 then q = q + 1 end
  if q > RL_MAX_REFILL_MS then
    rl_fail(script, string.format('burst * period_ms / limit must be at most %d ms (10 years), got %d ms', RL_MAX_REFILL_MS, q))
  end
end

--- Exact time until the bucket holds `target` units: ms + num / limit, 0 <= num < limit.
local function rl_time_until(target, whole, frac, limit, period_ms)
  if whole >= target then return 0, 0 end
  local q, r = rl_muldivmod(target - whole, period_ms, limit)
  local carry, num = rl_divmod(r - frac, limit)
  return q + carry, num
end

--- The same, rounded up to whole ms.
local function rl_ms_until(target, whole, frac, limit, period_ms)
  local ms, num = rl_time_until(target, whole, frac, limit, period_ms)
  if num > 0 then return ms + 1 end
  return ms
end

--- Content after `elapsed_ms` of refill, capped at burst. Any bucket is full again within
--- RL_MAX_REFILL_MS (the refill_bounded check), which also keeps the product below exact.
local function rl_refill(whole, frac, elapsed_ms, burst, limit, period_ms)
  local carry
  carry, frac = rl_divmod(frac, period_ms) -- frac was counted under an older period_ms
  whole = whole + carry
  if whole >= burst or elapsed_ms > RL_MAX_REFILL_MS then return burst, 0 end
  if elapsed_ms <= 0 then return whole, frac end
  local q, r = rl_muldivmod(elapsed_ms, limit, period_ms)
  local f
  carry, f = rl_divmod(frac + r, period_ms)
  whole = whole + q + carry
  if whole >= burst then return burst, 0 end
  return whole, f
end

--- Give `cost` units back, never above burst.
local function rl_give(whole, frac, burst, cost)
  if whole + cost >= burst then return burst, 0 end
  return whole + cost, frac
end

--- Take `cost` units: allowed (1/0), whole units left, retry_after_ms (0 allowed, -1 never).
local function rl_take(whole, frac, burst, cost, limit, period_ms)
  if cost > burst then return 0, whole, -1 end
  if whole >= cost then return 1, whole - cost, 0 end
  return 0, whole, rl_ms_until(cost, whole, frac, limit, period_ms)
end
