--- Quota: a budget of `limit` units per calendar day, week or month, cost weighted, in a zone:
--- a fixed UTC offset in ms, or a time zone's rules (rl_tz_rules) for DST-correct periods. The
--- state names its period, and expires exactly at the period's end.
--- @include "lib/counter"
--- @include "lib/calendar"

--- allowed, remaining, reset_after_ms, retry_after_ms, then the write to apply if admitted, flat
--- (rl_counter_write's values; none when nothing is written).
local function rl_quota_decide(key, limit, unit, zone, cost, now, simulated, keep, stored)
  local start, period_end = rl_calendar_period(now, unit, zone)
  local used = rl_counter_read('quota', key, start, nil, stored)
  return rl_counter_take(key, limit, start, period_end, used, cost, now, simulated, keep)
end

--- The same with the write as a list of writes (rl_apply's), for callers that plan lists.
local function rl_quota_eval(key, limit, unit, zone, cost, now, simulated, keep)
  local allowed, remaining, reset, retry, cmd, k, value, opt, at = rl_quota_decide(key, limit, unit, zone, cost, now, simulated, keep)
  if cmd then return allowed, remaining, reset, retry, { { cmd, k, value, opt, at } } end
  return allowed, remaining, reset, retry, RL_NO_WRITES
end

local function rl_quota_refund(key, limit, unit, zone, cost, now, simulated, stored)
  local start, period_end = rl_calendar_period(now, unit, zone)
  local used = math.max(rl_counter_read('quota', key, start, nil, stored) - cost, 0)
  local reset = 0
  if used > 0 then reset = period_end - now end
  return limit - used, reset, rl_counter_writes(key, start, period_end, used, now, simulated)
end
