--- Fixed window: at most `limit` units per window of `period_ms`, windows aligned to the epoch
--- plus offset_ms. Denied calls do not count. State (v3): on the server clock the integer
--- count * 2^22 + window_start_ms mod 2^22, expiring at the window's end; on a caller's clock
--- (now_ms) "window_start_ms:count" (lib/counter).
--- @include "lib/counter"

local function rl_fixed_window_eval(key, limit, period_ms, offset_ms, cost, now, simulated, keep, stored)
  local start = rl_window_start(now, period_ms, offset_ms)
  local tag = start % 4194304 -- rl_counter_tag(start), inline: every decision computes it
  local used = rl_counter_read('fixed_window', key, start, tag, stored)
  return rl_counter_take(key, limit, start, start + period_ms, used, cost, now, simulated, keep, tag)
end

local function rl_fixed_window_refund(key, limit, period_ms, offset_ms, cost, now, simulated, stored)
  local start = rl_window_start(now, period_ms, offset_ms)
  local tag = rl_counter_tag(start)
  local used = math.max(rl_counter_read('fixed_window', key, start, tag, stored) - cost, 0)
  local reset = 0
  if used > 0 then reset = start + period_ms - now end
  return limit - used, reset, rl_counter_writes(key, start, start + period_ms, used, now, simulated, tag)
end
