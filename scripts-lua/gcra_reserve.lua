--- @script gcra_reserve
--- @version 2
--- @summary Books the next slot fleet-wide on a gcra key: admits now if it can, else reserves the cost if it will be available within max_wait_ms and says how long to wait (the basis of acquire-with-wait without polling). v2: stores the tat as one integer, ms * 10^6 + num (ms then num in six digits), int-encoded when the tat's fraction num < 1e6, i.e. every limit up to 1e6 (Redis int-encodes it: about 30% fewer bytes per key), else "ms:num" as before; reads v1 state (an upgrade under traffic loses nothing).
--- @key state GCRA state: the theoretical arrival time (tat), ms + num / limit ms: the integer ms * 10^6 + num (ms then num in six digits) when num < 10^6 and 1 <= ms <= 9223372036853 (int-encoded by Redis), else "ms:num". Absent means full.
--- @arg limit int required 1..1000000000 Units refilled per period.
--- @arg period_ms int required 1..31622400000 Refill period in ms (at most 366 days).
--- @arg burst int default=limit 1..1000000000 Capacity: units a fresh key admits at once.
--- @arg cost int default=1 1..1000000000 Units to reserve.
--- @arg max_wait_ms int default=0 0..31622400000 Longest wait the caller accepts.
--- @arg now_ms int optional 0..140737488355328 Clock override in ms; Redis TIME when omitted.
--- @check refill_bounded limit period_ms burst
--- @check reserve_bounded limit period_ms max_wait_ms
--- @return allowed bool 1 if the cost is booked: proceed after wait_ms.
--- @return remaining int Whole units left after this call (0 while in debt).
--- @return reset_after_ms int ms until the key is back to full.
--- @return retry_after_ms int 0 when booked; ms until a booking would fit within max_wait_ms; -1 when cost > burst (never).
--- @return wait_ms int ms to wait before using the booked units (0 = now).
--- @include "lib/algo_gcra"
--- @include "lib/clock"
--- @args

local now = rl_now_ms(now_ms)
local whole, frac = rl_gcra_read(KEYS[1], limit, period_ms, burst, now)
local reset = rl_ms_until(burst, whole, frac, limit, period_ms)
if cost > burst then return { 0, math.max(whole, 0), reset, -1, 0 } end
local wait = rl_ms_until(cost, whole, frac, limit, period_ms)
if wait > max_wait_ms then return { 0, math.max(whole, 0), reset, wait - max_wait_ms, 0 } end
whole = whole - cost -- may go below zero: later callers queue behind this booking
local reset_ms, reset_num = rl_time_until(burst, whole, frac, limit, period_ms)
rl_apply(rl_gcra_writes(KEYS[1], reset_ms, reset_num, now, now_ms ~= nil))
if reset_num > 0 then reset_ms = reset_ms + 1 end
return rl_reply({ 1, math.max(whole, 0), reset_ms, 0, wait })
