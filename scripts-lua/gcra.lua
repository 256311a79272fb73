--- @script gcra
--- @version 1
--- @summary Generic cell rate algorithm: a fresh key admits `burst` units at once, then refills continuously at `limit` per `period_ms`. State is one string; decisions are identical to token_bucket.
--- @key state GCRA state: the theoretical arrival time as "ms:num" (num in 1/limit ms). Absent means full.
--- @arg limit int required 1..1000000000 Units refilled per period.
--- @arg period_ms int required 1..31622400000 Refill period in ms (at most 366 days).
--- @arg burst int default=limit 1..1000000000 Capacity: units a fresh key admits at once.
--- @arg cost int default=1 0..1000000000 Units this call takes; 0 is a peek that never writes.
--- @arg now_ms int optional 0..140737488355328 Clock override in ms; Redis TIME when omitted.
--- @check refill_bounded limit period_ms burst
--- @return allowed bool 1 if the cost was admitted and taken.
--- @return remaining int Whole units left after this call.
--- @return reset_after_ms int ms until the key is back to full (and expires).
--- @return retry_after_ms int 0 when allowed; ms until this cost would be admitted; -1 when cost > burst (never).
--- @include "lib/bucket"
--- @include "lib/clock"
--- @args

local now = rl_now_ms(now_ms)

-- Decode: content = (now + burst span - tat) * limit / period_ms, exactly.
local whole, frac = burst, 0
local stored = redis.call('GET', KEYS[1])
if stored then
  local tat_ms, tat_num = string.match(stored, '^(%d+):(%d+)$')
  if not tat_ms then rl_fail('gcra', 'key ' .. KEYS[1] .. ' does not hold gcra state') end
  tat_ms = tonumber(tat_ms)
  if tat_ms >= now then
    local span_ms, span_num = rl_muldivmod(burst, period_ms, limit)
    local borrow, slack_num = rl_divmod(span_num - tonumber(tat_num), limit)
    local slack_ms = span_ms - (tat_ms - now) + borrow
    if slack_ms < 0 then
      whole, frac = 0, 0 -- burst was lowered below what is already spent
    else
      local q, r = rl_muldivmod(slack_ms, limit, period_ms)
      local carry, f = rl_divmod(r + slack_num, period_ms)
      whole, frac = q + carry, f
    end
  end
end

local allowed, remaining, retry_after_ms = rl_take(whole, frac, burst, cost, limit, period_ms)
local reset_ms, reset_num = rl_time_until(burst, remaining, frac, limit, period_ms)
local reset_after_ms = reset_ms
if reset_num > 0 then reset_after_ms = reset_ms + 1 end

if allowed == 1 and cost > 0 then
  redis.call('SET', KEYS[1], string.format('%d:%d', now + reset_ms, reset_num), 'PX', reset_after_ms)
end
return { allowed, remaining, reset_after_ms, retry_after_ms }
