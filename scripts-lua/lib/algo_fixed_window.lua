--- Fixed window: at most `limit` units per window of `period_ms`, windows aligned to the epoch
--- plus offset_ms. Denied calls do not count.
--- @include "lib/counter"

local function rl_fixed_window_eval(key, limit, period_ms, offset_ms, cost, now, simulated, keep)
  local start = rl_window_start(now, period_ms, offset_ms)
  local used = rl_counter_read('fixed_window', key, start)
  return rl_counter_take(key, limit, start, start + period_ms, used, cost, now, simulated, keep)
end

local function rl_fixed_window_refund(key, limit, period_ms, offset_ms, cost, now, simulated)
  local start = rl_window_start(now, period_ms, offset_ms)
  local used = math.max(rl_counter_read('fixed_window', key, start) - cost, 0)
  local reset = 0
  if used > 0 then reset = start + period_ms - now end
  return limit - used, reset, rl_counter_writes(key, start, start + period_ms, used, now, simulated)
end
