--- Settling a reservation on one limit: give back what was over-estimated (each algorithm's own
--- refund), or charge what was under-estimated — the only place a limit is charged without
--- asking whether it admits. A charge either stops at what is left (cap) or may go into debt:
--- the limit then admits nothing until the debt is repaid, by refill (gcra, token_bucket) or by
--- the window's end (fixed_window, quota, sliding_window). Debt is bounded by one capacity: after a
--- charge a limit holds at least -burst units (buckets) or counts at most 2 * limit (counters);
--- the part of a charge beyond that is not charged (the reply's remaining says 0 either way).
--- @include "lib/algo_gcra"
--- @include "lib/algo_token_bucket"
--- @include "lib/algo_fixed_window"
--- @include "lib/algo_sliding_window"
--- @include "lib/algo_quota"

--- How much of `cost` to charge a limit with `left` units left (negative: in debt) and `capacity`.
local function rl_charge_take(left, capacity, cost, debt)
  local room = left
  if debt then room = left + capacity end
  if room <= 0 then return 0 end
  if cost < room then return cost end
  return room
end

--- Each charge returns remaining (never below 0), reset_after_ms and the writes to apply.
--- `stored`: the state already read (lib/tiers: a string, or false for none); nil reads the key.
local function rl_gcra_charge(key, limit, period_ms, burst, cost, debt, now, simulated, stored)
  local whole, frac = rl_gcra_read(key, limit, period_ms, burst, now, stored)
  whole = whole - rl_charge_take(whole, burst, cost, debt)
  local reset_ms, reset_num = rl_time_until(burst, whole, frac, limit, period_ms)
  local writes = rl_gcra_writes(key, reset_ms, reset_num, now, simulated)
  if reset_num > 0 then reset_ms = reset_ms + 1 end
  return math.max(whole, 0), reset_ms, writes
end

local function rl_token_bucket_charge(key, limit, period_ms, burst, cost, debt, now, simulated, stored)
  local whole, frac, ts = rl_token_bucket_read(key, limit, period_ms, burst, now, stored)
  whole = whole - rl_charge_take(whole, burst, cost, debt)
  return math.max(whole, 0), rl_ms_until(burst, whole, frac, limit, period_ms),
    rl_token_bucket_writes(key, whole, frac, ts, limit, period_ms, burst, now, simulated)
end

--- fixed_window and quota: the count of the window [start, window_end); `tag` as lib/counter's
--- (fixed_window's window tag, nil for quota).
local function rl_counter_charge(script, key, limit, start, window_end, cost, debt, now, simulated, tag, stored)
  local used = rl_counter_read(script, key, start, tag, stored)
  used = used + rl_charge_take(limit - used, limit, cost, debt)
  local reset = 0
  if used > 0 then reset = window_end - now end
  return math.max(limit - used, 0), reset, rl_counter_writes(key, start, window_end, used, now, simulated, tag)
end

local function rl_sliding_window_charge(key, limit, period_ms, cost, debt, now, simulated, stored)
  local start = rl_window_start(now, period_ms, 0)
  local cur, prev = rl_sliding_window_read(key, start, period_ms, stored)
  local wq, wr = rl_muldivmod(prev, period_ms - (now - start), period_ms)
  if wr > 0 then wq = wq + 1 end
  cur = cur + rl_charge_take(limit - cur - wq, limit, cost, debt)
  return math.max(limit - cur - wq, 0), rl_sliding_window_reset(start, period_ms, cur, prev, now),
    rl_sliding_window_writes(key, start, period_ms, cur, prev, now, simulated)
end

--- Charges `cost` more to one reserved limit (item: algo and parameters as multi's). `stored` as
--- the charges' above.
local function rl_charge(key, item, cost, debt, now, simulated, stored)
  local algo = item.algo
  if algo == 'gcra' then
    return rl_gcra_charge(key, item.limit, item.period_ms, item.burst, cost, debt, now, simulated, stored)
  elseif algo == 'token_bucket' then
    return rl_token_bucket_charge(key, item.limit, item.period_ms, item.burst, cost, debt, now, simulated, stored)
  elseif algo == 'fixed_window' then
    local start = rl_window_start(now, item.period_ms, item.offset_ms)
    return rl_counter_charge('fixed_window', key, item.limit, start, start + item.period_ms, cost, debt, now, simulated,
      rl_counter_tag(start), stored)
  elseif algo == 'sliding_window' then
    return rl_sliding_window_charge(key, item.limit, item.period_ms, cost, debt, now, simulated, stored)
  end
  local start, period_end = rl_calendar_period(now, item.unit, item.offset_ms)
  return rl_counter_charge('quota', key, item.limit, start, period_end, cost, debt, now, simulated, nil, stored)
end

--- Gives `cost` back to one reserved limit, never above full: each algorithm's own refund.
--- `stored` as the charges' above.
local function rl_charge_refund(key, item, cost, now, simulated, stored)
  local algo = item.algo
  local remaining, reset, writes
  if algo == 'gcra' then
    remaining, reset, writes = rl_gcra_refund(key, item.limit, item.period_ms, item.burst, cost, now, simulated, stored)
  elseif algo == 'token_bucket' then
    remaining, reset, writes = rl_token_bucket_refund(key, item.limit, item.period_ms, item.burst, cost, now, simulated, stored)
  elseif algo == 'fixed_window' then
    remaining, reset, writes = rl_fixed_window_refund(key, item.limit, item.period_ms, item.offset_ms, cost, now, simulated, stored)
  elseif algo == 'sliding_window' then
    remaining, reset, writes = rl_sliding_window_refund(key, item.limit, item.period_ms, cost, now, simulated, stored)
  else
    remaining, reset, writes = rl_quota_refund(key, item.limit, item.unit, item.offset_ms, cost, now, simulated, stored)
  end
  return math.max(remaining, 0), reset, writes
end
