--- @script reserve
--- @version 3
--- @summary Reserve an estimate on N limits at once, all-or-nothing like multi, and remember what was taken under a reservation key until settle commits the actual or cancels (or the reservation expires and counts at its estimate). v2 (from v1): a group field share_ppm (the call's priority class, as in multi), so a group is 8 arguments instead of 7; v1's ARGV is refused (BADARG: argument count). v3 (from v2): a fixed argument tz_rules after now_ms (time zone rules of quota limits, one entry per limit, as multi v3 takes them), so ARGV is ttl_ms, now_ms, tz_rules, then the groups; v2's ARGV is refused (BADARG: argument count). The record keeps each quota limit's calendar period [start, end) as reserved, so settle gives back to and charges that period only (settle v3).
--- @key record The reservation's own key, `<prefix>:{<tag>}:!rsv:<rid>` with a random 128-bit rid: same hash slot as the state keys. Holds the record (what was taken, and the calendar period of each quota limit) until settle replaces it by a tombstone; expires after ttl_ms.
--- @key state+ One key per limit, in the order of the limits: its state key (a block key for algo block). In Redis Cluster all must share a hash slot with the record key.
--- The decision is multi's: every limit takes its estimate, or none does and nothing is written (not
--- even the record). An estimate larger than a limit can ever hold is refused with retry -1. Algorithms:
--- every one that can give units back (gcra, token_bucket, fixed_window, sliding_window, quota);
--- block is a gate only (a blocked subject cannot reserve; settle leaves it alone); sliding_log is
--- refused (it cannot refund). A reservation nobody settles expires after ttl_ms and its units stay
--- taken: it counts at its estimate.
--- Replays: the same record key with the same limits, keys and estimates while the reservation
--- lives is the same reservation (a retry whose first reply was lost): it is admitted again and
--- takes nothing more. A record key that holds another reservation, or one already settled, is
--- refused (BADARG): reservation ids are never reused.
--- A quota limit is decided in its time zone when tz_rules names one (else at its offset_ms), and
--- the record keeps the period it was reserved in: settle touches that period only (the zone is
--- not needed to settle). The zone is not part of the reservation's identity: a replay with rules
--- built again is the same reservation.
--- @arg ttl_ms int required 1..86400000 How long the reservation may stay unsettled (at most a day).
--- @arg now_ms int optional 0..140737488355328 Clock override in ms; Redis TIME when omitted (pass '' to omit).
--- @arg tz_rules string optional maxlen=16384 Time zones of quota limits, as multi takes them: one entry per limit, in order, `|`-separated, each empty (the limit keeps its offset_ms) or a time zone's rules, "off0;t1:off1;..." in ms (src/client/time-zone.ts builds them from an IANA zone; at most 1024 bytes each). Empty: no zones. A rule for a limit that is not quota, or a count of entries other than the number of limits, is refused (BADARG) and nothing is written.
--- @each limits
--- @group algo enum:gcra|token_bucket|fixed_window|sliding_window|quota|block required The limit's algorithm (block: a penalty key set by the block script).
--- @group limit int default=1 1..1000000000000000 Units per period (gcra/token_bucket: refill rate; quota: budget up to 1e15; others up to 1e9).
--- @group period_ms int optional 1..31622400000 Period or window in ms (all but quota and block).
--- @group cost int default=1 0..1000000000000000 The estimate this limit takes now (RPM: 1, TPM: the estimated tokens).
--- @group burst int default=limit 1..1000000000000000 gcra/token_bucket capacity.
--- @group offset_ms int default=0 -50400000..31622400000 fixed_window: window offset (0 <= offset < period); quota: UTC offset.
--- @group unit enum:day|week|month optional quota: the calendar period.
--- @group share_ppm int default=1000000 0..1000000 Priority class: the share of this limit's capacity (burst for gcra/token_bucket, else limit) the reservation may use, in parts per million; the limit admits only if capacity - floor(capacity * share_ppm / 1e6) units are left after the estimate. 1000000 (the default) keeps nothing back; block ignores it. Not part of the record: a replay is the same reservation whatever class it names, and settle gives back what was taken.
--- @check multi_items limits
--- @return allowed bool 1 if every limit admitted: the estimates are taken and the reservation recorded; 0 if any denied and nothing was written.
--- @return denied_index int 1-based index of the first limit that denied; 0 when allowed.
--- @return retry_after_ms int 0 when allowed; the longest wait any denying limit needs; -1 if an estimate can never fit.
--- @return_each allowed bool 1 if this limit alone would admit.
--- @return_each remaining int Whole units left on this limit: after the reservation when all admitted, else what it holds now.
--- @return_each reset_after_ms int ms until this limit is back to full (after this call).
--- @return_each retry_after_ms int 0 when this limit admits; else its own wait; -1 never.

-- redlimit reserve v3: generated by codegen from scripts-lua/reserve.lua and its includes. Edit those, not this file.

-- from scripts-lua/lib/args.lua
--- Argument checks shared by every script. They read no globals (KEYS and ARGV come in as
--- arguments) so the same code runs as an EVAL script and inside the Redis Functions library.
--- Codegen writes each script's prologue from its
--- header as calls to these, so a bad argument is refused before any key is read or written.
--- Integers must be plain decimal strings: "1e3", "0x10", "1.0", "inf" and "nan" are refused
--- rather than guessed at (Lua's tonumber would take all of them).

--- Library functions the hot paths call, bound by the first line of every prologue (codegen)
--- until they are: in a Redis Functions library each global lookup goes through the globals
--- table's metatable, and a library may not read globals while it loads, so they are looked up
--- once (an EVAL script binds them on each call). nil until bound.
local rl_call

local rl_fmod

local rl_floor

local rl_format

local rl_tonumber

local rl_bound = false

--- Lua 5.1 (Redis, Valkey) has unpack; Lua 5.4 (Dragonfly) has table.unpack. Looked up at call
--- time: a Functions library may not touch globals while it loads.
local function rl_unpack(list)
  return (table.unpack or unpack)(list)
end

--- A reply of integers. In Lua 5.4 a division yields a float even when it is whole, and a float
--- in a reply is not an integer reply everywhere; floor makes it one (a no-op in Lua 5.1).
local function rl_reply(values)
  if math.tointeger then
    for i = 1, #values do values[i] = math.floor(values[i]) end
  end
  return values
end

--- Errors are codes: the first word of every error reply says what went wrong, the rest is for
--- people. BADARG: an argument the script refuses (the caller's mistake, never Redis').
local function rl_fail(script, message)
  error({ err = 'BADARG redlimit ' .. script .. ': ' .. message })
end

--- WRONGSTATE: the key holds a value of the right Redis type that is not this script's state
--- (someone else's data under the prefix, or another algorithm's). Redis itself answers
--- WRONGTYPE when the type differs.
local function rl_fail_state(script, key)
  error({ err = 'WRONGSTATE redlimit ' .. script .. ': key ' .. key .. ' does not hold ' .. script .. ' state' })
end

--- An argument's name in messages: `cost`, or `cost[3]` for the third item of a list. Built only
--- when a message is, so a valid call formats no numbers.
local function rl_arg_label(name, item)
  if item then return name .. '[' .. item .. ']' end
  return name
end

--- Decimal strings the int parser below accepted, by the string: the value parsed. The prologue reads
--- it first, so a string already parsed costs a table read and its own range test. A Functions
--- library keeps it between calls (an EVAL script starts empty each call): the limits a client
--- sends on every call are parsed once. At most 1024 entries, then it starts over (values that
--- vary per call: costs, now_ms).
local rl_int_memo = {}

local rl_int_memo_n = 0

local function rl_arg_int(script, raw, index, name, required, min, max, item)
  if raw == nil or raw == '' then
    if required then
      rl_fail(script, rl_arg_label(name, item) .. ' (ARGV[' .. index .. ']) is required')
    end
    return nil
  end
  if #raw > 17 or not string.find(raw, '^%-?%d+$') then
    rl_fail(script, rl_arg_label(name, item) .. ' (ARGV[' .. index .. ']) must be a decimal integer, got "' .. string.sub(raw, 1, 40) .. '"')
  end
  local n = tonumber(raw)
  if n < min or n > max then
    rl_fail(script, string.format('%s (ARGV[%d]) must be between %d and %d, got %s', rl_arg_label(name, item), index, min, max, raw))
  end
  if rl_int_memo_n >= 1024 then
    rl_int_memo = {}
    rl_int_memo_n = 0
  end
  rl_int_memo[raw] = n
  rl_int_memo_n = rl_int_memo_n + 1
  return n
end

local function rl_arg_string(script, raw, index, name, required, max_len, item)
  if raw == nil or raw == '' then
    if required then
      rl_fail(script, rl_arg_label(name, item) .. ' (ARGV[' .. index .. ']) is required')
    end
    return nil
  end
  if #raw > max_len then
    rl_fail(script, string.format('%s (ARGV[%d]) must be at most %d bytes, got %d', rl_arg_label(name, item), index, max_len, #raw))
  end
  return raw
end

local function rl_arg_enum(script, raw, index, name, required, values, item)
  if raw == nil or raw == '' then
    if required then
      rl_fail(script, rl_arg_label(name, item) .. ' (ARGV[' .. index .. ']) is required')
    end
    return nil
  end
  if not string.find(values, '|' .. raw .. '|', 1, true) or string.find(raw, '|', 1, true) then
    rl_fail(script, string.format('%s (ARGV[%d]) must be one of %s, got "%s"', rl_arg_label(name, item), index, string.sub(values, 2, -2), string.sub(raw, 1, 40)))
  end
  return raw
end

--- For scripts over a list: fixed keys then one key per item, fixed args then one group per item.
local function rl_arity_variadic(script, keys, argv, nkeys, nargs, group_size)
  local items = #keys - nkeys + 1
  if items < 1 then
    rl_fail(script, string.format('expects at least %d key(s), got %d', nkeys, #keys))
  end
  if #argv ~= nargs + items * group_size then
    rl_fail(script, string.format('expects %d argument(s) for %d key(s) (%d fixed + %d per key), got %d', nargs + items * group_size, #keys, nargs, group_size, #argv))
  end
end

-- from scripts-lua/lib/exact.lua
--- Exact integer arithmetic on Lua 5.1 doubles. Every value a script keeps stays an integer
--- below 2^53; a product that could pass that is split into 12-bit chunks, so rates such as
--- 1e9 units per 31 days keep every unit. The TypeScript twin (src/twin/exact.ts) is this
--- file line for line.

local RL_TWO53 = 9007199254740992

--- q, r with p = q*c + r and 0 <= r < c (floor division), for integers c >= 1, |p| + c <= 2^53.
local function rl_divmod(p, c)
  local r = rl_fmod(p, c)
  if r < 0 then r = r + c end
  return (p - r) / c, r
end

--- q, r with a*b = q*c + r and 0 <= r < c, for integers 0 <= a < 2^40, 0 <= b < 2^48,
--- 1 <= c < 2^40. q is exact while it is below 2^53.
local function rl_muldivmod(a, b, c)
  local p = (a + 0.0) * b -- a float product: Lua 5.4 integers would wrap past 2^63
  if p < RL_TWO53 then
    local r = rl_fmod(p, c) -- p >= 0: no sign fix-up needed
    return (p - r) / c, r
  end
  local q, r = 0, 0
  local scale = 68719476736 -- 2^36: b's most significant 12-bit chunk
  while scale >= 1 do
    local chunk = rl_floor(b / scale)
    b = b - chunk * scale
    local s = r * 4096 + a * chunk
    local rr = rl_fmod(s, c)
    q = q * 4096 + (s - rr) / c
    r = rr
    scale = scale / 4096
  end
  return q, r
end

-- from scripts-lua/lib/bucket.lua
--- The continuous-refill bucket shared by gcra and token_bucket: `burst` units of capacity,
--- refilled at `limit` units per `period_ms`. A bucket's content at a moment is kept exactly as
--- whole + frac / period_ms units (0 <= frac < period_ms); a duration as ms + num / limit ms.
--- The two scripts differ only in how they store that content, never in a decision.

--- Longest a bucket may take to refill from empty: 10 years. It bounds every TTL and keeps
--- every intermediate value exact.
local RL_MAX_REFILL_MS = 315360000000

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

--- Take `cost` units: allowed (1/0), whole units left, retry_after_ms (0 allowed, -1 never).
local function rl_take(whole, frac, burst, cost, limit, period_ms)
  if cost > burst then return 0, whole, -1 end
  if whole >= cost then return 1, whole - cost, 0 end
  return 0, whole, rl_ms_until(cost, whole, frac, limit, period_ms)
end

-- from scripts-lua/lib/clock.lua
--- The clock: Redis server time unless the caller passes now_ms (tests, simulation, replays).
--- Server time means a fleet with skewed clocks still agrees on every decision.

local function rl_now_ms(override)
  if override then return override end
  local t = rl_call('TIME')
  return rl_tonumber(t[1]) * 1000 + rl_floor(rl_tonumber(t[2]) / 1000)
end

--- Grace added to TTLs on a caller's clock: a simulation or replay may run slower than its own
--- clock, and must not lose state it still needs. (No decision depends on a TTL: every state
--- records the time it belongs to; TTLs only free memory.)
local RL_SIMULATED_GRACE_MS = 60000

--- How to expire a key `ttl_ms` after `now`: on the server clock as an absolute time (PXAT /
--- PEXPIREAT: no rounding, never early), on a caller's clock (now_ms) as a relative TTL plus
--- grace (PX / PEXPIRE). Returns the SET option, the expire command and its value — formatted
--- as an integer here: a Lua number given to redis.call is otherwise formatted with %.17g, which
--- costs more than the integer conversion.
local function rl_expiry(now, ttl_ms, simulated)
  if simulated then return 'PX', 'PEXPIRE', string.format('%d', ttl_ms + RL_SIMULATED_GRACE_MS) end
  return 'PXAT', 'PEXPIREAT', string.format('%d', now + ttl_ms)
end

--- Whether writes take their self-describing forms only (lib/tiers sets it for its call): the
--- packed forms of fixed_window, sliding_window and token_bucket name their window or time only
--- modulo a power of two or ten, which is exact while the key expires with its state. In a
--- subject's key a limit's state can outlive its own expiry (another limit keeps the key), so
--- there each state names its window or time in full.
local rl_plain_forms = false

--- No writes: shared, never changed (saves a table per call that writes nothing).
local RL_NO_WRITES = {}

--- Runs the writes an algorithm planned: a list of redis.call argument lists.
local function rl_apply(writes)
  for i = 1, #writes do
    redis.call(rl_unpack(writes[i]))
  end
end

--- Runs one write an algorithm returned flat (gcra, sliding_window, fixed_window, quota: no
--- tables to build): `cmd, key, value, opt, at` is SET key value opt at, or DEL key (value nil);
--- a `cmd` with no key is a list of writes (rl_apply: the algorithms that still plan lists); nil
--- is no write.
local function rl_apply_write(cmd, key, value, opt, at)
  if key == nil then
    if cmd then rl_apply(cmd) end
  elseif value == nil then
    rl_call(cmd, key)
  else
    rl_call(cmd, key, value, opt, at)
  end
end

-- from scripts-lua/lib/algo_gcra.lua
--- GCRA over the shared bucket: the state is the theoretical arrival time (tat), ms + num / limit
--- ms (0 <= num < limit). Content at `now` = (now + burst span - tat) * limit / period.
--- Stored (v3) as one decimal integer, ms followed by num in exactly six digits (ms * 10^6 + num),
--- whenever num < 10^6 (every limit up to 10^6, and any whole-ms tat) and 1 <= ms <=
--- 9223372036853 (the value stays <= 2^63 - 1, the largest long): Redis keeps such a value
--- int-encoded, in the object itself (no string allocation). Built and read as a string (its
--- digits are sliced), never as a Lua number: 19 digits are past a double's exact range.
--- Otherwise as the string "ms:num", which is also what v2 wrote: both are read.

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

-- from scripts-lua/lib/algo_token_bucket.lua
--- Token bucket over the shared bucket: the content (tokens whole + frac / period_ms units) and
--- the time ts_ms it was counted at. A clock that steps back refills nothing (content is kept as
--- counted). State (v4): one string value, one SET, in the first of these forms that applies:
---   the negative integer -(ts_ms * 1000 + tokens), when frac is 0, 0 <= tokens < 1000, ts_ms <
---     9007199254740 (the year 2255) and not both 0: Redis keeps it int-encoded (no string
---     allocation). A fresh key's first take is always this form; a refill that leaves no
---     fraction of a unit too. Negative so that no other algorithm's integer (gcra's, the
---     windows', all >= 0) reads as a token bucket, nor a token bucket's as theirs (WRONGSTATE).
---   on the server clock only (v4), the negative integer "-" followed by exactly 19 digits:
---     wd (1 digit: how many digits tokens has, 1..8), fd (1 digit: how many frac has, 1..9),
---     tokens (wd digits), frac (fd digits), then ts_ms mod 10^e in e = 17 - wd - fd digits,
---     zero-padded. The leading digit wd >= 1 keeps it canonical and wd <= 8 below 9 * 10^18 <
---     2^63: Redis int-encodes it too. Written when 0 <= tokens < 10^8, frac < 10^9, the content
---     was counted now (ts_ms = now: no clock step back pending) and 10^e > reset + 2 *
---     RL_TB_CLOCK_SLACK_MS. The key expires at ts_ms + reset (PXAT), so it is read at an age
---     now - ts_ms in [-RL_TB_CLOCK_SLACK_MS, reset + RL_TB_CLOCK_SLACK_MS] (a server clock
---     stepped back, a replica's, TIME taken after the expiry snapshot), a window narrower than
---     10^e: ts_ms is the one time in (now - 10^e + slack, now + slack] with that remainder, exact.
---     v3's integer has at most 16 digits: the 19 say which form it is. Built and read as strings
---     (never as one double: 19 digits are past 2^53).
---   "tokens,frac,ts_ms" otherwise (tokens negative in debt; a caller's clock); commas, so that no
---     window state ("start:cur:prev") reads as a token bucket, nor a token bucket as one.
--- v2 kept a hash { tokens, frac, ts_ms }: it is still read (GET answers WRONGTYPE), and the next
--- write replaces it.

local RL_TB_RADIX = 1000

local RL_TB_MAX_PACKED_MS = 9007199254739

--- How far the server clock may read a compact state before it was counted (a step back, a
--- replica behind its primary) or past its expiry (TIME read after the expiry snapshot of the
--- call or of its MULTI) and still find the exact ts_ms: 60 s, as the caller's-clock TTL grace.
local RL_TB_CLOCK_SLACK_MS = 60000

--- The compact form's fields (`stored`: "-" and 19 characters): tokens, frac, and ts_ms from its
--- last e digits, read at `now`.
local function rl_token_bucket_unpack(stored, key, now)
  local wd, fd = string.byte(stored, 2, 3)
  wd, fd = wd - 48, fd - 48 -- ASCII digits
  local e = 17 - wd - fd
  if wd < 1 or wd > 8 or fd < 1 or e < 1 then rl_fail_state('token_bucket', key) end
  local whole = rl_tonumber(string.sub(stored, 4, 3 + wd))
  local frac = rl_tonumber(string.sub(stored, 4 + wd, 3 + wd + fd))
  local tsm = rl_tonumber(string.sub(stored, 4 + wd + fd))
  if not (whole and frac and tsm) then rl_fail_state('token_bucket', key) end
  local span = 10
  for _ = 2, e do span = span * 10 end
  -- The age now - ts_ms, taken in [-slack, span - slack): exact while the true age is there.
  local _, age = rl_divmod(now - tsm + RL_TB_CLOCK_SLACK_MS, span)
  return whole, frac, now - (age - RL_TB_CLOCK_SLACK_MS)
end

--- The compact form of (whole, frac) counted at `ts` (now) and full again `reset` ms later, or
--- nil when it does not apply (see the state above).
local function rl_token_bucket_pack(whole, frac, ts, reset)
  if whole < 0 or whole >= 100000000 or frac >= 1000000000 then return nil end
  local wd, p = 1, 10 -- digits of whole, 10^wd
  while p <= whole do wd, p = wd + 1, p * 10 end
  local fd, q = 1, 10 -- digits of frac, 10^fd
  while q <= frac do fd, q = fd + 1, q * 10 end
  local span = 100000000000000000 / (p * q) -- 10^e, e = 17 - wd - fd: powers of ten, exact
  if reset + 2 * RL_TB_CLOCK_SLACK_MS >= span then return nil end
  -- The 19 digits D = head * 10^e + ts mod 10^e; head (wd, fd, whole, frac: 2 + wd + fd <= 13
  -- digits, as e >= 6 here) is exact, D is not: written as its first 4 digits and last 15.
  local head = ((wd * 10 + fd) * p + whole) * q + frac
  local m = p * q / 100 -- 10^(15 - e)
  local low = rl_fmod(head, m)
  return rl_format('-%d%015d', (head - low) / m, low * span + rl_fmod(ts, span))
end

--- Content at `now` (whole, frac) and the time it was counted at. `stored`: the state already
--- read (a string, or false for none: lib/tiers); nil reads the key.
local function rl_token_bucket_read(key, limit, period_ms, burst, now, stored)
  if stored == nil then stored = redis.pcall('GET', key) end
  if not stored then return burst, 0, now end
  local whole, frac, ts_ms, packed
  -- The compact form by its shape, before tonumber (20 digits take strtod's slow path): 20
  -- characters, "-" and no comma ("-222,5,1796211721924" is the text form in debt). # of GET's
  -- error table (a v2 hash) is 0.
  if #stored == 20 and string.byte(stored) == 45 and not string.find(stored, ',', 3, true) then
    whole, frac, ts_ms = rl_token_bucket_unpack(stored, key, now)
  else
    packed = tonumber(stored)
  end
  if whole then
    -- the compact form, read
  elseif packed and packed < 0 then
    packed = -packed
    whole = packed % RL_TB_RADIX
    frac = 0
    ts_ms = (packed - whole) / RL_TB_RADIX
  elseif type(stored) == 'string' then
    whole, frac, ts_ms = string.match(stored, '^(%-?%d+),(%d+),(%d+)$')
    if not whole then rl_fail_state('token_bucket', key) end
    whole, frac, ts_ms = tonumber(whole), tonumber(frac), tonumber(ts_ms)
  else
    -- v2's hash (GET's WRONGTYPE error is a table with err).
    stored = redis.call('HMGET', key, 'tokens', 'frac', 'ts_ms')
    if not stored[1] then return burst, 0, now end
    whole, frac, ts_ms = tonumber(stored[1]), tonumber(stored[2]), tonumber(stored[3])
  end
  whole, frac = rl_refill(whole, frac, now - ts_ms, burst, limit, period_ms)
  if ts_ms > now then return whole, frac, ts_ms end
  return whole, frac, now
end

local function rl_token_bucket_writes(key, whole, frac, ts, limit, period_ms, burst, now, simulated)
  local reset = rl_ms_until(burst, whole, frac, limit, period_ms)
  if reset == 0 then return { { 'DEL', key } } end
  -- Refill runs from ts (later than now only if the clock stepped back).
  local set_opt, _, at = rl_expiry(now, reset + ts - now, simulated)
  if frac == 0 and whole >= 0 and whole < RL_TB_RADIX and ts <= RL_TB_MAX_PACKED_MS and ts + whole > 0 then
    return { { 'SET', key, string.format('-%d', ts * RL_TB_RADIX + whole), set_opt, at } }
  end
  if not simulated and not rl_plain_forms and ts <= now then
    local value = rl_token_bucket_pack(whole, frac, ts, reset)
    if value then return { { 'SET', key, value, set_opt, at } } end
  end
  return { { 'SET', key, string.format('%d,%d,%d', whole, frac, ts), set_opt, at } }
end

--- `keep` (lib/priority, nil = 0): units that must be left after the call; decided at cost + keep.
local function rl_token_bucket_eval(key, limit, period_ms, burst, cost, now, simulated, keep, stored)
  local whole, frac, ts = rl_token_bucket_read(key, limit, period_ms, burst, now, stored)
  keep = keep or 0
  local allowed, remaining, retry = rl_take(whole, frac, burst, cost + keep, limit, period_ms)
  if allowed == 1 then remaining = remaining + keep end
  local reset = rl_ms_until(burst, remaining, frac, limit, period_ms)
  local writes = {}
  if allowed == 1 and cost > 0 then
    writes = rl_token_bucket_writes(key, remaining, frac, ts, limit, period_ms, burst, now, simulated)
  end
  return allowed, remaining, reset, retry, writes
end

-- from scripts-lua/lib/counter.lua
--- A count that belongs to one window, expiring exactly at the window's end. Two forms, both read:
---   "window_start_ms:count" (quota; every counter on a caller's clock, now_ms, where TTLs carry
---     grace; all of v2): the window start in the value means a key that outlives its window can
---     never carry a count into the next one.
---   the integer count * 2^22 + window_start_ms mod 2^22 (fixed_window v3 on the server clock,
---     count below 2^31, a period that is not a multiple of 2^22 ms): Redis keeps it
---     int-encoded, in the object itself (no string allocation). The key expires at its window's
---     end (PXAT), so a key still there holds this window's count, or for an instant the previous
---     window's (the script's TIME past the end while expiry is judged at the script's start
---     time): their starts differ by the period, so their tags differ. A key left by other
---     parameters (period_ms or offset_ms changed) is read as this window's only if its start is
---     this window's start plus a nonzero multiple of 2^22 ms (70 min): v2 read it as this
---     window's only if the starts were equal.

--- Start of the window of `period_ms` containing `now`, windows starting at offset_ms + k*period_ms.
local function rl_window_start(now, period_ms, offset_ms)
  local _, into = rl_divmod(now - offset_ms, period_ms)
  return now - into
end

--- fixed_window's tag for the window starting at `start`: start mod 2^22. The packed form is
--- count * 2^22 + tag, count below 2^31 (so below 2^53); 4194304 (2^22) and 2147483648 (2^31)
--- are written out where they are used (a constant is cheaper than an upvalue per decision).
local function rl_counter_tag(start)
  return start % 4194304
end

--- Count stored for the window starting at `start` (0 for any other window or no key). `tag`:
--- the window's tag when the packed form may be stored (fixed_window), nil when not (quota).
--- `stored`: the state already read (a string, or false for none: lib/tiers); nil reads the key.
local function rl_counter_read(script, key, start, tag, stored)
  if stored == nil then stored = rl_call('GET', key) end
  if not stored then return 0 end
  -- Only fixed_window (a tag) may store the packed integer: quota's "start:count" is not parsed
  -- as a number first (a failed tonumber runs strtod over the whole string).
  local packed = tag and rl_tonumber(stored)
  if packed and packed >= 0 then
    local t = packed % 4194304
    if t ~= tag then return 0 end
    return (packed - t) / 4194304
  end
  local s, c = string.match(stored, '^(%-?%d+):(%d+)$') -- a window may start before the epoch (a caller's clock near 0)
  if not s then rl_fail_state(script, key) end
  if tonumber(s) ~= start then return 0 end
  return tonumber(c)
end

--- The last expiry time and value written, and their strings (a pure memo of string.format, as
--- gcra's: every key of a window expires at its end).
local rl_counter_memo_at = -1

local rl_counter_memo_at_s = ''

local rl_counter_memo_start = -1

local rl_counter_memo_used = -1

local rl_counter_memo_value = ''

--- The write storing `used` for the window [start, window_end), expiring exactly at its end, flat
--- (SET key value opt at, or DEL key when used is 0): the packed integer when there is a tag, the
--- server clock keeps time, used < 2^31 and the period is not a multiple of 2^22 ms (else the
--- previous window would have the same tag), else "start:used".
local function rl_counter_write(key, start, window_end, used, now, simulated, tag)
  if used <= 0 then return 'DEL', key end
  local set_opt, at = 'PXAT', window_end
  if simulated then set_opt, at = 'PX', window_end - now + RL_SIMULATED_GRACE_MS end
  if at ~= rl_counter_memo_at then rl_counter_memo_at, rl_counter_memo_at_s = at, rl_format('%d', at) end
  if tag and not simulated and not rl_plain_forms and used < 2147483648 and (window_end - start) % 4194304 ~= 0 then
    return 'SET', key, rl_format('%d', used * 4194304 + tag), set_opt, rl_counter_memo_at_s
  end
  if start ~= rl_counter_memo_start or used ~= rl_counter_memo_used then
    rl_counter_memo_start, rl_counter_memo_used, rl_counter_memo_value = start, used, rl_format('%d:%d', start, used)
  end
  return 'SET', key, rl_counter_memo_value, set_opt, rl_counter_memo_at_s
end

--- The decision of a counter in [start, window_end): allowed, remaining, reset, retry, then the
--- write to apply if admitted, flat (rl_counter_write's values; none when nothing is written).
--- `keep` (lib/priority, nil = 0): units that must be left after the call; decided at cost + keep.
--- `tag` as rl_counter_write's.
local function rl_counter_take(key, limit, start, window_end, used, cost, now, simulated, keep, tag)
  local need = cost
  if keep then need = cost + keep end
  if need <= limit and used + need <= limit then
    if cost > 0 then
      return 1, limit - used - cost, window_end - now, 0, rl_counter_write(key, start, window_end, used + cost, now, simulated, tag)
    end
    if used > 0 then return 1, limit - used, window_end - now, 0 end
    return 1, limit - used, 0, 0
  end
  local reset = 0
  if used > 0 then reset = window_end - now end
  if need > limit then return 0, limit - used, reset, -1 end
  return 0, limit - used, reset, window_end - now
end

-- from scripts-lua/lib/algo_fixed_window.lua
--- Fixed window: at most `limit` units per window of `period_ms`, windows aligned to the epoch
--- plus offset_ms. Denied calls do not count. State (v3): on the server clock the integer
--- count * 2^22 + window_start_ms mod 2^22, expiring at the window's end; on a caller's clock
--- (now_ms) "window_start_ms:count" (lib/counter).

local function rl_fixed_window_eval(key, limit, period_ms, offset_ms, cost, now, simulated, keep, stored)
  local start = rl_window_start(now, period_ms, offset_ms)
  local tag = start % 4194304 -- rl_counter_tag(start), inline: every decision computes it
  local used = rl_counter_read('fixed_window', key, start, tag, stored)
  return rl_counter_take(key, limit, start, start + period_ms, used, cost, now, simulated, keep, tag)
end

-- from scripts-lua/lib/algo_sliding_window.lua
--- Sliding window (two counters): the count of the current window plus the previous window's
--- count weighted by how much of it the rolling window still covers. Windows are aligned to the
--- epoch. Exact rational comparison; no float weights.
--- State (v3), two forms, both read:
---   the integer (cur * 2^16 + prev) * 2^21 + window_start_ms mod 2^21, on the server clock while
---     cur and prev are below 2^16 and neither the period nor twice it is a multiple of 2^21 ms:
---     below 2^53, and Redis keeps it int-encoded (no string allocation). The key expires at the
---     end of the window after its own (its own when cur is 0), so a key still there belongs to
---     this window or the previous one, or for an instant (the script's TIME past a window's end
---     while expiry is judged at the script's start) the one before: their starts differ by
---     multiples of the period below 3 periods, so their tags differ. A key left by another
---     period is misread only if its start is off this window's (or the previous one's) by a
---     nonzero multiple of 2^21 ms (35 min).
---   "start:cur:prev" (larger counts, or a caller's clock, now_ms, where TTLs carry grace; v2).

local RL_SW_TAGS = 2097152 -- 2^21

local RL_SW_COUNTS = 65536 -- 2^16

--- Counts (cur, prev) for the window starting at `start`. `stored`: the state already read (a
--- string, or false for none: lib/tiers); nil reads the key.
local function rl_sliding_window_read(key, start, period_ms, stored)
  if stored == nil then stored = rl_call('GET', key) end
  if not stored then return 0, 0 end
  local packed = rl_tonumber(stored)
  if packed and packed >= 0 then
    local t = packed % RL_SW_TAGS
    local pair = (packed - t) / RL_SW_TAGS
    local p = pair % RL_SW_COUNTS
    if t == start % RL_SW_TAGS then return (pair - p) / RL_SW_COUNTS, p end
    if t == (start - period_ms) % RL_SW_TAGS then return 0, (pair - p) / RL_SW_COUNTS end
    return 0, 0
  end
  local s, c, p = string.match(stored, '^(%d+):(%d+):(%d+)$')
  if not s then rl_fail_state('sliding_window', key) end
  s = tonumber(s)
  if s == start then return tonumber(c), tonumber(p) end
  if s == start - period_ms then return 0, tonumber(c) end
  return 0, 0
end

--- ms until the state is empty again.
local function rl_sliding_window_reset(start, period_ms, cur, prev, now)
  if cur > 0 then return start + 2 * period_ms - now end
  if prev > 0 then return start + period_ms - now end
  return 0
end

--- The last expiry time and packed value written, and their strings (a pure memo of
--- string.format, as gcra's: every key of a window expires at the same time).
local rl_sw_memo_at = -1

local rl_sw_memo_at_s = ''

local rl_sw_memo_packed = -1

local rl_sw_memo_value = ''

--- The write storing (cur, prev) for the window starting at `start`, flat: SET key value opt at,
--- or DEL key when empty.
local function rl_sliding_window_write(key, start, period_ms, cur, prev, now, simulated)
  local reset = rl_sliding_window_reset(start, period_ms, cur, prev, now)
  if reset == 0 then return 'DEL', key end
  local set_opt, at = 'PXAT', now + reset
  if simulated then set_opt, at = 'PX', reset + RL_SIMULATED_GRACE_MS end
  if at ~= rl_sw_memo_at then rl_sw_memo_at, rl_sw_memo_at_s = at, rl_format('%d', at) end
  if not simulated and not rl_plain_forms and cur < RL_SW_COUNTS and prev < RL_SW_COUNTS and period_ms % RL_SW_TAGS ~= 0 and (2 * period_ms) % RL_SW_TAGS ~= 0 then
    local packed = (cur * RL_SW_COUNTS + prev) * RL_SW_TAGS + start % RL_SW_TAGS
    if packed ~= rl_sw_memo_packed then rl_sw_memo_packed, rl_sw_memo_value = packed, rl_format('%d', packed) end
    return 'SET', key, rl_sw_memo_value, set_opt, rl_sw_memo_at_s
  end
  return 'SET', key, rl_format('%d:%d:%d', start, cur, prev), set_opt, rl_sw_memo_at_s
end

--- Earliest ms into a window at which prev * (period - e) / period <= room (prev > 0, room >= 0).
local function rl_sliding_window_when(prev, room, period_ms)
  local q = rl_muldivmod(room, period_ms, prev)
  return math.max(period_ms - q, 0)
end

--- The decision in the window starting at `start` (rl_window_start(now, period_ms, 0): a caller
--- deciding many keys at one `now` computes it once): allowed, remaining, reset_after_ms,
--- retry_after_ms, then the write to apply if admitted, flat (rl_sliding_window_write's values;
--- none when nothing is written). `keep` (lib/priority, nil = 0): units that must be left after
--- the call; decided at cost + keep.
local function rl_sliding_window_decide(key, limit, period_ms, start, cost, now, simulated, keep, stored)
  local elapsed = now - start
  local cur, prev = rl_sliding_window_read(key, start, period_ms, stored)
  -- weighted previous count = prev * (period - elapsed) / period = wq + wr / period
  local used = 0
  if prev > 0 then
    local wq, wr = rl_muldivmod(prev, period_ms - elapsed, period_ms)
    used = wq
    if wr > 0 then used = used + 1 end
  end
  local room = limit - cur - used -- whole units left: floor(limit - cur - weighted)
  local need = cost
  if keep then need = cost + keep end
  if need <= room and need <= limit then
    if cost == 0 then return 1, room, rl_sliding_window_reset(start, period_ms, cur, prev, now), 0 end
    cur = cur + cost
    return 1, room - cost, rl_sliding_window_reset(start, period_ms, cur, prev, now), 0,
      rl_sliding_window_write(key, start, period_ms, cur, prev, now, simulated)
  end
  local reset = rl_sliding_window_reset(start, period_ms, cur, prev, now)
  if need > limit then return 0, math.max(room, 0), reset, -1 end
  local retry
  if cur + need <= limit then
    -- Later in this window the previous window's weight falls far enough.
    retry = rl_sliding_window_when(prev, limit - cur - need, period_ms) - elapsed
  else
    -- Not before the next window, where prev' = cur and cur' = 0.
    retry = period_ms - elapsed + rl_sliding_window_when(cur, limit - need, period_ms)
  end
  return 0, math.max(room, 0), reset, retry
end

--- rl_sliding_window_decide at `now`'s window.
local function rl_sliding_window_eval(key, limit, period_ms, cost, now, simulated, keep, stored)
  return rl_sliding_window_decide(key, limit, period_ms, rl_window_start(now, period_ms, 0), cost, now, simulated, keep, stored)
end

-- from scripts-lua/lib/algo_sliding_log.lua
--- Sliding log: an exact rolling window on a sorted set. One entry per admitted call, scored by
--- its time, named "<cumulative units, 16 digits>:<cost>" (zero-padded so that entries of one
--- millisecond sort in the order they were added), so the units in the window are
--- newest.cumulative - (oldest.cumulative - oldest.cost) without reading every entry. Entries
--- leave the window `period_ms` after they were admitted; each has cost >= 1, so a key never
--- holds more than `limit` entries.

--- Returns (units in window, cumulative units so far). Reads only: what left the window is
--- dropped by the admitting write (the eval below), after its ZADD, so the key never goes
--- away between a decision's read and its write (on a Redis Cluster a key that vanished in a
--- migrating slot could not be written again by that call).
local function rl_sliding_log_read(key, period_ms, now)
  local since = string.format('%d', now - period_ms)
  local oldest = redis.call('ZRANGEBYSCORE', key, '(' .. since, '+inf', 'LIMIT', 0, 1)
  local used, cumulative = 0, 0
  if #oldest > 0 then
    local newest = redis.call('ZRANGE', key, -1, -1)
    local o_cum, o_cost = string.match(oldest[1], '^(%d+):(%d+)$')
    local n_cum = string.match(newest[1], '^(%d+):')
    if not o_cum or not n_cum then rl_fail_state('sliding_log', key) end
    used, cumulative = tonumber(n_cum) - tonumber(o_cum) + tonumber(o_cost), tonumber(n_cum)
  end
  return used, cumulative
end

--- ms until enough of the oldest entries leave the window to free `needed` units.
local function rl_sliding_log_wait(key, period_ms, now, needed)
  local offset = 0
  local freed = 0
  while true do
    local batch = redis.call('ZRANGEBYSCORE', key, string.format('(%d', now - period_ms), '+inf', 'WITHSCORES', 'LIMIT', offset, 128)
    if #batch == 0 then return 0 end
    for i = 1, #batch, 2 do
      freed = freed + tonumber(string.match(batch[i], ':(%d+)$'))
      if freed >= needed then return tonumber(batch[i + 1]) + period_ms - now end
    end
    offset = offset + 128
  end
end

local function rl_sliding_log_reset(key, period_ms, now)
  local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if #newest == 0 then return 0 end
  return math.max(tonumber(newest[2]) + period_ms - now, 0)
end

--- `keep` (lib/priority, nil = 0): units that must be left after the call; decided at cost + keep.
--- `trim`: an admitting write also drops the entries that left the window (after its ZADD).
local function rl_sliding_log_eval(key, limit, period_ms, cost, now, simulated, trim, keep)
  local used, cumulative = rl_sliding_log_read(key, period_ms, now)
  local reset = 0
  if used > 0 then reset = rl_sliding_log_reset(key, period_ms, now) end
  local need = cost
  if keep then need = cost + keep end
  if need > limit then return 0, limit - used, reset, -1, {} end
  if used + need > limit then
    return 0, limit - used, reset, rl_sliding_log_wait(key, period_ms, now, used + need - limit), {}
  end
  if cost == 0 then return 1, limit - used, reset, 0, {} end
  local _, expire_cmd, at = rl_expiry(now, period_ms, simulated)
  local writes = {
    { 'ZADD', key, string.format('%d', now), string.format('%016d:%d', cumulative + cost, cost) },
    { expire_cmd, key, at },
  }
  if trim then writes[3] = { 'ZREMRANGEBYSCORE', key, '-inf', string.format('%d', now - period_ms) } end
  return 1, limit - used - cost, period_ms, 0, writes
end

-- from scripts-lua/lib/calendar.lua
--- Calendar periods in a UTC offset or a time zone's rules: days, ISO weeks (from Monday) and
--- months. Civil-date conversions after Howard Hinnant's days_from_civil / civil_from_days.
--- A zone is either a fixed offset in ms (a number) or the rules of rl_tz_rules (a table).

local RL_DAY_MS = 86400000

local function rl_days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

local function rl_civil_from_days(z)
  z = z + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local m = mp + 3
  if mp >= 10 then m = mp - 9 end
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return y, m
end

--- Most entries a rule string may hold: a window of 440 days has 4 transitions in every zone
--- that has any; the rest is headroom for zones that change their rules.
local RL_TZ_MAX_ENTRIES = 64

local RL_TZ_MAX_OFFSET_MS = 50400000

--- Parses a time zone's rules, "off0;t1:off1;t2:off2;..." in ms: off0 is the UTC offset before
--- t1, off_i the one from t_i on (t strictly increasing). The client builds it from an IANA zone
--- for a window around now (src/client/time-zone.ts); outside that window the nearest offset
--- holds. Returns { offsets = {off0, off1, ...}, times = {t1, ...} }; a malformed string is
--- refused with BADARG.
local function rl_tz_rules(script, raw)
  local offsets, times = {}, {}
  local bad = function(why)
    rl_fail(script, 'tz_rules ' .. why .. ', got "' .. string.sub(raw, 1, 40) .. '"')
  end
  local n = 0
  for entry in string.gmatch(raw .. ';', '([^;]*);') do
    n = n + 1
    if n > RL_TZ_MAX_ENTRIES then bad('has more than ' .. RL_TZ_MAX_ENTRIES .. ' entries') end
    local t, off
    if n == 1 then
      off = entry
    else
      t, off = string.match(entry, '^(%d+):(.*)$')
      if t == nil or #t > 15 then bad('entry ' .. n .. ' must be <ms since epoch>:<offset ms>') end
      t = tonumber(t)
      if n > 2 and t <= times[n - 2] then bad('transition times must increase') end
      times[n - 1] = t
    end
    if #off > 9 or not string.find(off, '^%-?%d+$') then bad('entry ' .. n .. ' needs an integer offset in ms') end
    off = tonumber(off)
    if off < -RL_TZ_MAX_OFFSET_MS or off > RL_TZ_MAX_OFFSET_MS then bad('offsets must be between -50400000 and 50400000') end
    offsets[n] = off
  end
  return { offsets = offsets, times = times }
end

--- The UTC offset in effect at instant t.
local function rl_tz_offset(rules, t)
  local times, i = rules.times, 1
  while i <= #times and t >= times[i] do i = i + 1 end
  return rules.offsets[i]
end

--- The first instant whose local time is at or after the local instant `l` (ms since the local
--- epoch): local midnight where it exists; in a gap (clocks jump over it) the transition; in an
--- overlap (it occurs twice) the first. Each span between transitions is tried on its own.
local function rl_tz_first_at(rules, l)
  local times, offsets = rules.times, rules.offsets
  local best
  for i = 1, #offsets do
    local u = l - offsets[i]
    if i > 1 and u < times[i - 1] then u = times[i - 1] end
    if (i > #times or u < times[i]) and (best == nil or u < best) then best = u end
  end
  return best
end

--- First and after-last local day numbers of the day / week / month containing local day `days`.
local function rl_calendar_days(days, unit)
  if unit == 'day' then return days, days + 1 end
  if unit == 'week' then
    local first = days - (days + 3) % 7 -- 1970-01-01 was a Thursday; weeks start on Monday
    return first, first + 7
  end
  local y, m = rl_civil_from_days(days)
  if m == 12 then return rl_days_from_civil(y, m, 1), rl_days_from_civil(y + 1, 1, 1) end
  return rl_days_from_civil(y, m, 1), rl_days_from_civil(y, m + 1, 1)
end

--- [start, end) in UTC ms of the day / week / month containing `now` in `zone`. A fixed offset
--- shifts every boundary alike. With rules, each boundary is local midnight at the offset in
--- effect then, so a day across a transition lasts 23 or 25 hours (a week 167 or 169, a month
--- one hour less or more). Where clocks fall back over midnight, a local date recurs: its second
--- stretch belongs to the period that had already begun.
local function rl_calendar_period(now, unit, zone)
  if type(zone) ~= 'table' then
    local first, after = rl_calendar_days(math.floor((now + zone) / RL_DAY_MS), unit)
    return first * RL_DAY_MS - zone, after * RL_DAY_MS - zone
  end
  local first, after = rl_calendar_days(math.floor((now + rl_tz_offset(zone, now)) / RL_DAY_MS), unit)
  local start, period_end = rl_tz_first_at(zone, first * RL_DAY_MS), rl_tz_first_at(zone, after * RL_DAY_MS)
  for _ = 1, 2 do
    if now < period_end then break end
    first, after = rl_calendar_days(after, unit)
    start, period_end = rl_tz_first_at(zone, first * RL_DAY_MS), rl_tz_first_at(zone, after * RL_DAY_MS)
  end
  return start, period_end
end

-- from scripts-lua/lib/algo_quota.lua
--- Quota: a budget of `limit` units per calendar day, week or month, cost weighted, in a zone:
--- a fixed UTC offset in ms, or a time zone's rules (rl_tz_rules) for DST-correct periods. The
--- state names its period, and expires exactly at the period's end.

--- allowed, remaining, reset_after_ms, retry_after_ms, then the write to apply if admitted, flat
--- (rl_counter_write's values; none when nothing is written).
local function rl_quota_decide(key, limit, unit, zone, cost, now, simulated, keep, stored)
  local start, period_end = rl_calendar_period(now, unit, zone)
  local used = rl_counter_read('quota', key, start, nil, stored)
  return rl_counter_take(key, limit, start, period_end, used, cost, now, simulated, keep)
end

-- from scripts-lua/lib/algo_block.lua
--- Penalty box: a key that, while it lives, denies its id whatever the limits say. Its value is
--- the ms timestamp the block ends (so a caller clock, now_ms, is honoured too).

--- Blocked until (ms) or nil.
local function rl_block_read(key, now)
  local stored = redis.call('GET', key)
  if not stored then return nil end
  local until_ms = tonumber(stored)
  if not until_ms then rl_fail_state('block', key) end
  if until_ms <= now then return nil end
  return until_ms
end

-- from scripts-lua/lib/algo_concurrency.lua
--- Concurrency leases: a sorted set of lease ids scored by when each lease expires (its holder
--- died or forgot to release). At most `limit` live leases per key.

--- Drops expired leases; returns how many are live.
local function rl_concurrency_live(key, now, trim)
  if trim then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', string.format('%d', now))
    return redis.call('ZCARD', key)
  end
  return redis.call('ZCOUNT', key, string.format('(%d', now), '+inf')
end

--- ms until the last live lease expires (0 when none): the key's TTL.
local function rl_concurrency_reset(key, now)
  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if #last == 0 then return 0 end
  return math.max(tonumber(last[2]) - now, 0)
end

--- One slot for `holder`: allowed, remaining, reset_after_ms, retry_after_ms, writes (to apply
--- if admitted). cost 1 takes a slot (a holder already live renews its slot: always admitted, it
--- takes none); cost 0 takes nothing. `keep` (lib/priority, nil = 0): slots that must be left
--- free after the call. With `trim` expired holders are dropped first (a write even when denied,
--- harmless: they count for nothing); without it nothing is written here.
local function rl_concurrency_eval(key, limit, period_ms, holder, cost, now, simulated, trim, keep)
  local live = rl_concurrency_live(key, now, trim)
  local renew = false
  if cost > 0 then
    local score = redis.call('ZSCORE', key, holder)
    if score and tonumber(score) > now then renew = true end
  end
  if not renew then
    local need = cost
    if keep then need = cost + keep end
    if need > limit then return 0, math.max(limit - live, 0), rl_concurrency_reset(key, now), -1, RL_NO_WRITES end
    if live + need > limit then
      -- Admitted once enough holders expire: the (live + need - limit)-th soonest.
      local nth = redis.call('ZRANGEBYSCORE', key, string.format('(%d', now), '+inf', 'WITHSCORES', 'LIMIT', string.format('%d', live + need - limit - 1), 1)
      return 0, math.max(limit - live, 0), rl_concurrency_reset(key, now), tonumber(nth[2]) - now, RL_NO_WRITES
    end
    if cost == 0 then return 1, limit - live, rl_concurrency_reset(key, now), 0, RL_NO_WRITES end
    live = live + 1
  end
  -- The key lives until its last holder expires: this one, or another that expires later.
  local reset = period_ms
  local last = redis.call('ZRANGE', key, -2, -1, 'WITHSCORES')
  for i = 1, #last, 2 do
    if last[i] ~= holder then
      local left = tonumber(last[i + 1]) - now
      if left > reset then reset = left end
    end
  end
  local _, expire_cmd, at = rl_expiry(now, reset, simulated)
  return 1, math.max(limit - live, 0), reset, 0, {
    { 'ZADD', key, string.format('%d', now + period_ms), holder },
    { expire_cmd, key, at },
  }
end

-- from scripts-lua/lib/priority.lua
--- Priority classes as reserved capacity. A call of share s (parts per million of the capacity it
--- may use) is admitted only if, after it, at least keep = capacity - floor(capacity * s / 1e6)
--- units would still be left: the algorithms decide at cost + keep and take cost. Share 1e6
--- (the default) keeps nothing back, so a call without a class decides exactly as before.
--- Capacity: burst for gcra and token_bucket, the limit for every other algorithm.

--- Units a call of `share_ppm` must leave (0 for nil or 1e6). Exact for capacities up to 1e15
--- with no product above 2^53: capacity = q * 1e6 + r, so floor(capacity * s / 1e6) =
--- q * s + floor(r * s / 1e6), with q * s <= 1e15 and r * s < 1e12. Self-contained on purpose:
--- every script that takes a class defines it per call, and lib/exact's helpers would come too.
local function rl_keep(capacity, share_ppm)
  if share_ppm == nil or share_ppm >= 1000000 then return 0 end
  local r = rl_fmod(capacity, 1000000)
  local rs = r * share_ppm
  return capacity - (capacity - r) / 1000000 * share_ppm - (rs - rl_fmod(rs, 1000000)) / 1000000
end

-- from scripts-lua/lib/multi.lua
--- One decision over many limits, all-or-nothing: every limit is evaluated on the same clock
--- reading, and only if all admit are their writes applied. Shared by multi and multi_peek.
--- Each item may carry a priority class (share_ppm, lib/priority), and an item of algo
--- concurrency holds a slot for its holder id: admitted with the rate items or not at all.

--- A parameter an item's algorithm needs, in its range (`i`: the item's number in messages, or nil).
local function rl_multi_need(script, i, algo, name, value, min, max)
  if value == nil then
    rl_fail(script, string.format('%s is required for algo %s', rl_arg_label(name, i), algo))
  end
  if value < min or value > max then
    rl_fail(script, string.format('%s must be between %d and %d for algo %s, got %d', rl_arg_label(name, i), min, max, algo, value))
  end
end

--- The parameters an item's algorithm needs, checked as the single-limit scripts check them.
--- `i` numbers the item in messages (`limit[2]`); nil for a script with one limit (batch).
--- Each range is tested here and rl_multi_need (which words the refusal) is called only for a
--- value out of it: a valid item makes no call but rl_check_refill_bounded's.
local function rl_multi_check(script, i, item)
  local algo = item.algo
  if algo == 'block' then return end
  local limit, period_ms, cost = item.limit, item.period_ms, item.cost
  if algo == 'concurrency' then
    -- The ranges of concurrency_acquire; cost 1 holds a slot, 0 only asks.
    rl_multi_need(script, i, algo, 'limit', limit, 1, 1000000)
    rl_multi_need(script, i, algo, 'period_ms', period_ms, 1, 31622400000)
    rl_multi_need(script, i, algo, 'cost', cost, 0, 1)
    if item.holder == nil then rl_fail(script, string.format('%s is required for algo concurrency', rl_arg_label('holder', i))) end
    return
  end
  if algo == 'quota' then
    if item.unit == nil then rl_fail(script, string.format('%s is required for algo quota', rl_arg_label('unit', i))) end
    local offset_ms = item.offset_ms
    if offset_ms == nil or offset_ms < -50400000 or offset_ms > 50400000 then
      rl_multi_need(script, i, algo, 'offset_ms', offset_ms, -50400000, 50400000)
    end
    return
  end
  if limit == nil or limit < 1 or limit > 1000000000 then rl_multi_need(script, i, algo, 'limit', limit, 1, 1000000000) end
  if period_ms == nil or period_ms < 1 or period_ms > 31622400000 then rl_multi_need(script, i, algo, 'period_ms', period_ms, 1, 31622400000) end
  if cost == nil or cost < 0 or cost > 1000000000 then rl_multi_need(script, i, algo, 'cost', cost, 0, 1000000000) end
  if algo == 'gcra' or algo == 'token_bucket' then
    local burst = item.burst
    if burst == nil or burst < 1 or burst > 1000000000 then rl_multi_need(script, i, algo, 'burst', burst, 1, 1000000000) end
    rl_check_refill_bounded(script, limit, period_ms, burst)
  elseif algo == 'fixed_window' then
    rl_multi_need(script, i, algo, 'offset_ms', item.offset_ms, 0, period_ms - 1)
  end
end

--- Every item's parameters (the prologue calls this after parsing the limits).
local function rl_check_multi_items(script, items)
  for i = 1, #items do rl_multi_check(script, i, items[i]) end
end

--- multi, multi_peek, multi_batch: the time zones of quota items, from tz_rules: one entry per
--- item, `|`-separated, each empty (the item keeps its offset_ms) or a rule string (rl_tz_rules,
--- at most 1024 bytes) for a quota item, parsed once and kept as item.zone. nil (tz_rules
--- omitted or empty) costs nothing: nothing is split. Called before any key is read.
local function rl_multi_zones(script, tz_rules, items)
  if tz_rules == nil then return end
  local _, bars = string.gsub(tz_rules, '|', '|')
  if bars + 1 ~= #items then
    rl_fail(script, string.format('tz_rules has %d entries for %d limit(s) (one per limit, empty for none)', bars + 1, #items))
  end
  local i = 0
  for entry in string.gmatch(tz_rules .. '|', '([^|]*)|') do
    i = i + 1
    if entry ~= '' then
      local item = items[i]
      if item.algo ~= 'quota' then
        rl_fail(script, string.format('tz_rules[%d] is for algo quota only, limit %d is %s', i, i, item.algo))
      end
      if #entry > 1024 then
        rl_fail(script, string.format('tz_rules[%d] must be at most 1024 bytes, got %d', i, #entry))
      end
      item.zone = rl_tz_rules(script, entry)
    end
  end
end

--- Evaluates one item: allowed, remaining, reset_after_ms, retry_after_ms, then its write as
--- rl_apply_write takes it (none, flat, or a list). `apply_now`: an algorithm that can may make
--- its write at once (batch: nothing to roll back) and return none.
--- item.share_ppm (nil = 1e6) is its priority class: decided at cost + what the class must leave.
--- `stored`: the item's state already read (lib/tiers: a string, or false for none; the string
--- algorithms only); nil reads `key`.
local function rl_multi_item(key, item, now, simulated, trim, apply_now, stored)
  local algo = item.algo
  local share = item.share_ppm
  -- No class (share empty or 1e6) keeps nothing back: no rl_keep call.
  local keep = 0
  if algo == 'gcra' then
    if share and share < 1000000 then keep = rl_keep(item.burst, share) end
    return rl_gcra_eval(key, item.limit, item.period_ms, item.burst, item.cost, now, simulated, apply_now, keep, stored)
  end
  if algo == 'block' then
    local until_ms = rl_block_read(key, now)
    if until_ms then return 0, 0, until_ms - now, until_ms - now end
    return 1, 0, 0, 0
  end
  if share and share < 1000000 then
    if algo == 'token_bucket' then keep = rl_keep(item.burst, share) else keep = rl_keep(item.limit, share) end
  end
  if algo == 'sliding_window' then
    return rl_sliding_window_eval(key, item.limit, item.period_ms, item.cost, now, simulated, keep, stored)
  elseif algo == 'quota' then
    return rl_quota_decide(key, item.limit, item.unit, item.zone or item.offset_ms, item.cost, now, simulated, keep, stored)
  elseif algo == 'fixed_window' then
    return rl_fixed_window_eval(key, item.limit, item.period_ms, item.offset_ms, item.cost, now, simulated, keep, stored)
  elseif algo == 'token_bucket' then
    return rl_token_bucket_eval(key, item.limit, item.period_ms, item.burst, item.cost, now, simulated, keep, stored)
  elseif algo == 'sliding_log' then
    return rl_sliding_log_eval(key, item.limit, item.period_ms, item.cost, now, simulated, trim, keep)
  end
  return rl_concurrency_eval(key, item.limit, item.period_ms, item.holder, item.cost, now, simulated, trim, keep)
end

--- Refuses a key given twice among keys[first + 1 .. first + n] (one decision's keys); items
--- are numbered from 1 in the message. Pairwise for the few limits a decision has (no table).
local function rl_multi_distinct(script, keys, first, n)
  if n > 8 then
    local seen = {}
    for i = 1, n do
      local k = keys[first + i]
      if seen[k] then
        rl_fail(script, string.format('key %s is given twice (items %d and %d)', k, seen[k], i))
      end
      seen[k] = i
    end
    return
  end
  for i = 2, n do
    local k = keys[first + i]
    for j = 1, i - 1 do
      if keys[first + j] == k then
        rl_fail(script, string.format('key %s is given twice (items %d and %d)', k, j, i))
      end
    end
  end
end

--- Calls of at most this many limits reuse the pending-writes list below, so what it keeps alive
--- after a call (keys, values) stays small; larger calls make a list of their own.
local RL_MULTI_REUSE = 16

--- The pending writes of a multi call, reused: a Functions library keeps it between calls, so a
--- call does not grow a fresh table slot by slot (five resizes for three limits); entries past
--- the call's own count are stale and never read.
local rl_multi_pending = {}

--- The reply of multi / multi_peek: allowed, denied_index, retry_after_ms, then per item
--- allowed, remaining, reset_after_ms, retry_after_ms.
local function rl_multi(script, keys, items, now, simulated, commit)
  local n = #items
  rl_multi_distinct(script, keys, 0, n)
  -- Sized for up to four items (3 + 4 * 4 slots) by its constructor: growing it slot by slot
  -- costs three resizes for three items. The slots past this call's items are cleared below.
  local reply = { 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }
  for k = 4 * n + 4, 19 do reply[k] = nil end
  -- The admitting items' writes, flat, five slots each (rl_apply_write's arguments).
  local pending, np = rl_multi_pending, 0
  if n > RL_MULTI_REUSE then pending = {} end
  for i = 1, n do
    local allowed, remaining, reset, retry, cmd, key, value, opt, at = rl_multi_item(keys[i], items[i], now, simulated, commit)
    local o = 4 * i
    reply[o], reply[o + 1], reply[o + 2], reply[o + 3] = allowed, remaining, reset, retry
    if allowed == 1 then
      if cmd then
        pending[np + 1], pending[np + 2], pending[np + 3], pending[np + 4], pending[np + 5] = cmd, key, value, opt, at
        np = np + 5
      end
    else
      if reply[1] == 1 then reply[1], reply[2] = 0, i end
      if retry < 0 or reply[3] < 0 then reply[3] = -1 elseif retry > reply[3] then reply[3] = retry end
    end
  end
  if commit and reply[1] == 1 then
    for m = 1, np, 5 do rl_apply_write(pending[m], pending[m + 1], pending[m + 2], pending[m + 3], pending[m + 4]) end
  else
    -- Nothing was taken: report what each admitting limit holds now, not what it would hold.
    for i = 1, n do
      local o = 4 * i
      if reply[o] == 1 and items[i].cost > 0 then
        local saved = items[i].cost
        items[i].cost = 0
        local _, remaining, reset = rl_multi_item(keys[i], items[i], now, simulated, false)
        items[i].cost = saved
        reply[o + 1], reply[o + 2] = remaining, reset
      end
    end
  end
  return reply
end

-- from scripts-lua/lib/reservation.lua
--- Reservation records: what reserve took, kept under the reservation's own key until settle
--- replaces it by a tombstone. Both are plain strings (one GET, one SET):
---   record     "r:<deadline_ms>:[<periods>#]<specs>\n<keys>"
---              specs = "algo,limit,period_ms,burst,offset_ms,unit,estimate;..."
---              periods (reserve v3; only when some limit is a quota) = one entry per limit,
---              `|`-separated: "<start_ms>,<end_ms>" of the calendar period a quota limit was
---              reserved in (in its time zone, if it had one), empty for any other algorithm.
---   tombstone  "s:<deadline_ms>:<c|x>"          c: committed, x: cancelled
--- keys is every state key as "<length>:<key>", concatenated, so settle compares its KEYS with one
--- string comparison and no key can be confused with two others. The deadline is in the value, not
--- only in the TTL, so a caller clock (now_ms, where TTLs carry grace) expires a record exactly.
--- A replay compares specs and keys only (not periods): a retry in the next period is the same
--- reservation. A record of reserve v2 has no periods (settle decides its quotas at its own now).

--- The state keys of a call (KEYS[2..]) as one string: "<length>:<key>" each.
local function rl_rsv_keys(keys)
  local parts = {}
  for i = 2, #keys do parts[i - 1] = #keys[i] .. ':' .. keys[i] end
  return table.concat(parts)
end

--- What reserve stores of each limit: its parameters (defaults applied) and its estimate.
local function rl_rsv_specs(items)
  local parts = {}
  for i = 1, #items do
    local it = items[i]
    local period = ''
    if it.period_ms then period = string.format('%d', it.period_ms) end
    parts[i] = string.format('%s,%d,%s,%d,%d,%s,%d', it.algo, it.limit, period, it.burst, it.offset_ms, it.unit or '', it.cost)
  end
  return table.concat(parts, ';')
end

--- The periods section of a record for these items at `now` (each item's zone as rl_multi_zones
--- set it, else its offset_ms): '' when no item is a quota (such a record is as v2's), else one
--- entry per item and a closing '#'.
local function rl_rsv_periods(items, now)
  local parts, any = {}, false
  for i = 1, #items do
    local it = items[i]
    if it.algo == 'quota' then
      local start, period_end = rl_calendar_period(now, it.unit, it.zone or it.offset_ms)
      parts[i] = string.format('%d,%d', start, period_end)
      any = true
    else
      parts[i] = ''
    end
  end
  if not any then return '' end
  return table.concat(parts, '|') .. '#'
end

--- What the reservation key holds at `now`: 'record', deadline, body (specs "\n" keys), periods
--- (nil: a record without them); or 'tombstone', deadline, mode; or nil when absent or past its
--- deadline.
local function rl_rsv_read(script, key, now)
  local stored = redis.call('GET', key)
  if not stored then return nil end
  local kind, deadline, rest = string.match(stored, '^([rs]):(%d+):(.*)$')
  if not kind then rl_fail_state(script, key) end
  deadline = tonumber(deadline)
  if now > deadline then return nil end
  if kind == 'r' then
    local periods, body = string.match(rest, '^([%d,|%-]*)#(.*)$')
    if periods then return 'record', deadline, body, periods end
    return 'record', deadline, rest
  end
  return 'tombstone', deadline, rest
end

-- from scripts-lua/reserve.lua
-- Arguments, as declared in the header above (written by codegen).
if not rl_bound then rl_call, rl_fmod, rl_floor, rl_format, rl_tonumber, rl_bound = redis.call, math.fmod, math.floor, string.format, tonumber, true end
rl_arity_variadic('reserve', KEYS, ARGV, 2, 3, 8)
local ttl_ms = ARGV[1]
do local n = rl_int_memo[ttl_ms] if n == nil or n < 1 or n > 86400000 then n = rl_arg_int('reserve', ttl_ms, 1, 'ttl_ms', true, 1, 86400000) end ttl_ms = n end
local now_ms = ARGV[2]
if now_ms == nil or now_ms == '' then now_ms = nil else do local n = rl_int_memo[now_ms] if n == nil or n < 0 or n > 140737488355328 then n = rl_arg_int('reserve', now_ms, 2, 'now_ms', false, 0, 140737488355328) end now_ms = n end end
local tz_rules = ARGV[3]
if tz_rules == nil or tz_rules == '' then tz_rules = nil else tz_rules = rl_arg_string('reserve', tz_rules, 3, 'tz_rules', false, 16384) end
local limits = {}
for i = 1, #KEYS - 1 do
  local base = 3 + (i - 1) * 8
  local g_algo = ARGV[base + 1]
  if not (g_algo == 'gcra' or g_algo == 'token_bucket' or g_algo == 'fixed_window' or g_algo == 'sliding_window' or g_algo == 'quota' or g_algo == 'block') then g_algo = rl_arg_enum('reserve', g_algo, base + 1, 'algo', true, '|gcra|token_bucket|fixed_window|sliding_window|quota|block|', i) end
  local g_limit = ARGV[base + 2]
  if g_limit == '' or g_limit == '1' then g_limit = 1 else do local n = rl_int_memo[g_limit] if n == nil or n < 1 or n > 1000000000000000 then n = rl_arg_int('reserve', g_limit, base + 2, 'limit', false, 1, 1000000000000000, i) end g_limit = n end end
  local g_period_ms = ARGV[base + 3]
  if g_period_ms == '' then g_period_ms = nil else do local n = rl_int_memo[g_period_ms] if n == nil or n < 1 or n > 31622400000 then n = rl_arg_int('reserve', g_period_ms, base + 3, 'period_ms', false, 1, 31622400000, i) end g_period_ms = n end end
  local g_cost = ARGV[base + 4]
  if g_cost == '' or g_cost == '1' then g_cost = 1 else do local n = rl_int_memo[g_cost] if n == nil or n < 0 or n > 1000000000000000 then n = rl_arg_int('reserve', g_cost, base + 4, 'cost', false, 0, 1000000000000000, i) end g_cost = n end end
  local g_burst = ARGV[base + 5]
  if g_burst == '' then g_burst = g_limit else do local n = rl_int_memo[g_burst] if n == nil or n < 1 or n > 1000000000000000 then n = rl_arg_int('reserve', g_burst, base + 5, 'burst', false, 1, 1000000000000000, i) end g_burst = n end end
  local g_offset_ms = ARGV[base + 6]
  if g_offset_ms == '' or g_offset_ms == '0' then g_offset_ms = 0 else do local n = rl_int_memo[g_offset_ms] if n == nil or n < -50400000 or n > 31622400000 then n = rl_arg_int('reserve', g_offset_ms, base + 6, 'offset_ms', false, -50400000, 31622400000, i) end g_offset_ms = n end end
  local g_unit = ARGV[base + 7]
  if g_unit == '' then g_unit = nil elseif not (g_unit == 'day' or g_unit == 'week' or g_unit == 'month') then g_unit = rl_arg_enum('reserve', g_unit, base + 7, 'unit', false, '|day|week|month|', i) end
  local g_share_ppm = ARGV[base + 8]
  if g_share_ppm == '' or g_share_ppm == '1000000' then g_share_ppm = 1000000 else do local n = rl_int_memo[g_share_ppm] if n == nil or n < 0 or n > 1000000 then n = rl_arg_int('reserve', g_share_ppm, base + 8, 'share_ppm', false, 0, 1000000, i) end g_share_ppm = n end end
  limits[i] = { algo = g_algo, limit = g_limit, period_ms = g_period_ms, cost = g_cost, burst = g_burst, offset_ms = g_offset_ms, unit = g_unit, share_ppm = g_share_ppm }
end
rl_check_multi_items('reserve', limits)

local record_key = KEYS[1]
local state_keys = {}
for i = 2, #KEYS do
  if KEYS[i] == record_key then rl_fail('reserve', string.format('the record key is also the state key of limit %d', i - 1)) end
  state_keys[i - 1] = KEYS[i]
end
rl_multi_zones('reserve', tz_rules, limits)
local now = rl_now_ms(now_ms)
local simulated = now_ms ~= nil
local body = rl_rsv_specs(limits) .. '\n' .. rl_rsv_keys(KEYS)

local held, _, held_body = rl_rsv_read('reserve', record_key, now)
if held == 'record' and held_body == body then
  -- The same reservation again: admitted, nothing more taken; what each limit holds now.
  local reply = { 1, 0, 0 }
  for i = 1, #limits do
    local item = limits[i]
    item.cost = 0
    local _, remaining, reset = rl_multi_item(state_keys[i], item, now, simulated, false)
    reply[#reply + 1] = 1
    reply[#reply + 1] = remaining
    reply[#reply + 1] = reset
    reply[#reply + 1] = 0
  end
  return rl_reply(reply)
elseif held then
  rl_fail('reserve', 'reservation key ' .. record_key .. ' already holds another reservation or a settled one (ids are never reused)')
end

local reply = rl_multi('reserve', state_keys, limits, now, simulated, true)
if reply[1] == 1 then
  local set_opt, _, at = rl_expiry(now, ttl_ms, simulated)
  redis.call('SET', record_key, string.format('r:%d:', now + ttl_ms) .. rl_rsv_periods(limits, now) .. body, set_opt, at)
end
return rl_reply(reply)
