--- GCRA over the shared bucket: the state is the theoretical arrival time (tat), ms + num / limit
--- ms (0 <= num < limit). Content at `now` = (now + burst span - tat) * limit / period.
--- Stored (v3) as one integer, ms * 1000 + num, whenever num < 1000 (always for limits up to 1000,
--- and whenever the tat is a whole ms) and ms * 1000 + num < 2^53 (ms below 9007199254740, the
--- year 2255): Redis keeps such a value int-encoded, in the object itself (no string allocation).
--- Otherwise as the string "ms:num", which is also what v2 wrote: both are read.
--- @include "lib/bucket"
--- @include "lib/clock"

--- The packed form's radix (decimal: the last three digits of the stored value are num) and the
--- largest ms it packs exactly (radix * ms + 999 < 2^53).
local RL_GCRA_RADIX = 1000
local RL_GCRA_MAX_PACKED_MS = 9007199254739

--- Content of a gcra key at `now` (whole, frac), full when absent or past; whole < 0 is debt.
local function rl_gcra_read(key, limit, period_ms, burst, now)
  local stored = redis.call('GET', key)
  if not stored then return burst, 0 end
  local tat_ms, tat_num
  local packed = tonumber(stored)
  if packed and packed >= 0 then
    tat_num = packed % RL_GCRA_RADIX
    tat_ms = (packed - tat_num) / RL_GCRA_RADIX
  else
    tat_ms, tat_num = string.match(stored, '^(%d+):(%d+)$')
    if not tat_ms then rl_fail_state('gcra', key) end
    tat_ms, tat_num = tonumber(tat_ms), tonumber(tat_num)
  end
  if tat_ms < now then return burst, 0 end
  local span_ms, span_num = rl_muldivmod(burst, period_ms, limit)
  local borrow, slack_num = rl_divmod(span_num - tat_num, limit)
  local slack_ms = span_ms - (tat_ms - now) + borrow
  if slack_ms < 0 then
    -- In debt (a reservation booked ahead, or burst lowered): content below zero.
    local q, r = rl_muldivmod(-slack_ms, limit, period_ms)
    local carry, frac = rl_divmod(slack_num - r, period_ms)
    return carry - q, frac
  end
  local q, r = rl_muldivmod(slack_ms, limit, period_ms)
  local carry, frac = rl_divmod(r + slack_num, period_ms)
  return q + carry, frac
end

--- The command that stores content (whole, frac) at `now`, given the exact time until it is full
--- again (reset_ms + reset_num / limit), as redis.call arguments; DEL when full (absent = full).
local function rl_gcra_write(key, reset_ms, reset_num, now, simulated)
  if reset_ms == 0 and reset_num == 0 then return 'DEL', key end
  local ttl = reset_ms
  if reset_num > 0 then ttl = ttl + 1 end
  local set_opt, _, at = rl_expiry(now, ttl, simulated)
  local tat_ms = now + reset_ms
  if reset_num < RL_GCRA_RADIX and tat_ms <= RL_GCRA_MAX_PACKED_MS then
    return 'SET', key, string.format('%d', tat_ms * RL_GCRA_RADIX + reset_num), set_opt, at
  end
  return 'SET', key, string.format('%d:%d', tat_ms, reset_num), set_opt, at
end

--- The same as a list of writes, for callers that apply them later (or never).
local function rl_gcra_writes(key, reset_ms, reset_num, now, simulated)
  return { { rl_gcra_write(key, reset_ms, reset_num, now, simulated) } }
end

--- allowed, remaining, reset_after_ms, retry_after_ms, writes (to apply if admitted). With
--- `apply_now` the write is made here and no list is built (a caller with nothing to roll back).
--- `keep` (lib/priority, nil = 0): units that must be left after the call; decided at cost + keep.
local function rl_gcra_eval(key, limit, period_ms, burst, cost, now, simulated, apply_now, keep)
  local whole, frac = rl_gcra_read(key, limit, period_ms, burst, now)
  keep = keep or 0
  local allowed, left, retry = rl_take(whole, frac, burst, cost + keep, limit, period_ms)
  if allowed == 1 then left = left + keep end
  local reset_ms, reset_num = rl_time_until(burst, left, frac, limit, period_ms)
  local writes = RL_NO_WRITES
  if allowed == 1 and cost > 0 then
    if apply_now then
      redis.call(rl_gcra_write(key, reset_ms, reset_num, now, simulated))
    else
      writes = rl_gcra_writes(key, reset_ms, reset_num, now, simulated)
    end
  end
  if reset_num > 0 then reset_ms = reset_ms + 1 end
  return allowed, math.max(left, 0), reset_ms, retry, writes
end

--- Gives `cost` back, never above full: remaining, reset_after_ms, writes.
local function rl_gcra_refund(key, limit, period_ms, burst, cost, now, simulated)
  local whole, frac = rl_gcra_read(key, limit, period_ms, burst, now)
  whole, frac = rl_give(whole, frac, burst, cost)
  local reset_ms, reset_num = rl_time_until(burst, whole, frac, limit, period_ms)
  local writes = rl_gcra_writes(key, reset_ms, reset_num, now, simulated)
  if reset_num > 0 then reset_ms = reset_ms + 1 end
  return math.max(whole, 0), reset_ms, writes
end
