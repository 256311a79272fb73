--- GCRA over the shared bucket: the state is the theoretical arrival time (tat), ms + num / limit
--- ms (0 <= num < limit). Content at `now` = (now + burst span - tat) * limit / period.
--- Stored (v3) as one decimal integer, ms followed by num in exactly six digits (ms * 10^6 + num),
--- whenever num < 10^6 (every limit up to 10^6, and any whole-ms tat) and 1 <= ms <=
--- 9223372036853 (the value stays <= 2^63 - 1, the largest long): Redis keeps such a value
--- int-encoded, in the object itself (no string allocation). Built and read as a string (its
--- digits are sliced), never as a Lua number: 19 digits are past a double's exact range.
--- Otherwise as the string "ms:num", which is also what v2 wrote: both are read.
--- @include "lib/bucket"
--- @include "lib/clock"

--- The largest ms the packed form takes: 9223372036853999999 <= 2^63 - 1 = 9223372036854775807.
local RL_GCRA_MAX_PACKED_MS = 9223372036853

--- Content of a gcra key at `now` (whole, frac), full when absent or past; whole < 0 is debt.
--- `stored`: the state already read (a string, or false for none: lib/tiers reads one key for
--- several limits); nil reads the key.
local function rl_gcra_read(key, limit, period_ms, burst, now, stored)
  if stored == nil then stored = rl_call('GET', key) end
  if not stored then return burst, 0 end
  local tat_ms, tat_num
  if string.find(stored, '^%d+$') then
    -- The packed form: the last six digits are num, the ones before ms (none: ms = 0).
    if #stored > 6 then
      tat_ms, tat_num = tonumber(string.sub(stored, 1, -7)), tonumber(string.sub(stored, -6))
    else
      tat_ms, tat_num = 0, tonumber(stored)
    end
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

--- The last expiry time and stored value gcra formatted, and their strings: formatting costs more
--- than the rest of a write, and consecutive writes often share them (fresh keys at the same ms
--- and cost: the same tat and expiry). A pure memo of string.format: no answer depends on it.
local rl_gcra_memo_at = -1
local rl_gcra_memo_at_s = ''
local rl_gcra_memo_ms = -1
local rl_gcra_memo_num = -1
local rl_gcra_memo_value = ''

--- The command that stores content (whole, frac) at `now`, given the exact time until it is full
--- again (reset_ms + reset_num / limit), as redis.call arguments; DEL when full (absent = full).
--- The expiry as rl_expiry's (an absolute PXAT on the server clock, PX plus grace on a caller's).
local function rl_gcra_write(key, reset_ms, reset_num, now, simulated)
  if reset_ms == 0 and reset_num == 0 then return 'DEL', key end
  local at = reset_ms
  if reset_num > 0 then at = at + 1 end
  local set_opt = 'PXAT'
  if simulated then
    set_opt, at = 'PX', at + RL_SIMULATED_GRACE_MS
  else
    at = now + at
  end
  if at ~= rl_gcra_memo_at then rl_gcra_memo_at, rl_gcra_memo_at_s = at, rl_format('%d', at) end
  local tat_ms = now + reset_ms
  if tat_ms ~= rl_gcra_memo_ms or reset_num ~= rl_gcra_memo_num then
    local value
    if reset_num < 1000000 and tat_ms >= 1 and tat_ms <= RL_GCRA_MAX_PACKED_MS then
      value = rl_format('%d%06d', tat_ms, reset_num)
    else
      value = rl_format('%d:%d', tat_ms, reset_num)
    end
    rl_gcra_memo_ms, rl_gcra_memo_num, rl_gcra_memo_value = tat_ms, reset_num, value
  end
  return 'SET', key, rl_gcra_memo_value, set_opt, rl_gcra_memo_at_s
end

--- The same as a list of writes, for callers that apply them later (or never).
local function rl_gcra_writes(key, reset_ms, reset_num, now, simulated)
  return { { rl_gcra_write(key, reset_ms, reset_num, now, simulated) } }
end

--- allowed, remaining, reset_after_ms, retry_after_ms, then the write to apply if admitted, flat
--- (rl_gcra_write's values; none when nothing is written). With `apply_now` the write is made here
--- and none is returned (a caller with nothing to roll back).
--- `keep` (lib/priority, nil = 0): units that must be left after the call; decided at cost + keep.
--- `stored` as rl_gcra_read's.
local function rl_gcra_eval(key, limit, period_ms, burst, cost, now, simulated, apply_now, keep, stored)
  local whole, frac = rl_gcra_read(key, limit, period_ms, burst, now, stored)
  keep = keep or 0
  local allowed, left, retry = rl_take(whole, frac, burst, cost + keep, limit, period_ms)
  if allowed == 1 then left = left + keep end
  local reset_ms, reset_num = rl_time_until(burst, left, frac, limit, period_ms)
  local after = reset_ms
  if reset_num > 0 then after = reset_ms + 1 end
  if left < 0 then left = 0 end
  if allowed == 1 and cost > 0 then
    if not apply_now then return 1, left, after, retry, rl_gcra_write(key, reset_ms, reset_num, now, simulated) end
    rl_call(rl_gcra_write(key, reset_ms, reset_num, now, simulated))
  end
  return allowed, left, after, retry
end

--- Gives `cost` back, never above full: remaining, reset_after_ms, writes.
local function rl_gcra_refund(key, limit, period_ms, burst, cost, now, simulated, stored)
  local whole, frac = rl_gcra_read(key, limit, period_ms, burst, now, stored)
  whole, frac = rl_give(whole, frac, burst, cost)
  local reset_ms, reset_num = rl_time_until(burst, whole, frac, limit, period_ms)
  local writes = rl_gcra_writes(key, reset_ms, reset_num, now, simulated)
  if reset_num > 0 then reset_ms = reset_ms + 1 end
  return math.max(whole, 0), reset_ms, writes
end
