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
--- @include "lib/bucket"
--- @include "lib/clock"

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

local function rl_token_bucket_refund(key, limit, period_ms, burst, cost, now, simulated, stored)
  local whole, frac, ts = rl_token_bucket_read(key, limit, period_ms, burst, now, stored)
  whole, frac = rl_give(whole, frac, burst, cost)
  return whole, rl_ms_until(burst, whole, frac, limit, period_ms),
    rl_token_bucket_writes(key, whole, frac, ts, limit, period_ms, burst, now, simulated)
end
