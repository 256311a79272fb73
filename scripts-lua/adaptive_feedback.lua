--- @script adaptive_feedback
--- @version 1
--- @summary AIMD: an upstream's answer moves the limit learned for a target — an overload multiplies it down (at most once per cooldown), a success period adds a step back up to the ceiling; Retry-After pauses the target.
--- @key version The global policy version `<prefix>:{policies}:version`: bumped on every change, so each instance's cache refreshes.
--- @key state The target's learned state `<prefix>:{policies}:adaptive:<target>`: "learned:decreased_ms:increased_ms:paused_until_ms".
--- State starts at the ceiling, is never above the ceiling given (a lowered ceiling applies at once)
--- nor below the floor. Multiplication is exact: learned x decrease_ppm / 1e6, floored (learned is at
--- most 1e9). A success adds `increase` only when success_period_ms passed since the last change,
--- so a steady stream of successes climbs one step per period. A change writes the state, bumps
--- the global version and publishes "<version> adaptive:<target>" on the channel redlimit:policy (pcall);
--- an overload past the cooldown that cannot lower the limit (it is at the floor) only records
--- its time, so the next increase waits a period; one within the cooldown writes nothing.
--- @arg outcome enum:overload|success required overload: a 429 or 503 (or a timeout you count as one); success: any other answer.
--- @arg target string required maxlen=200 The target's name, for the announcement.
--- @arg ceiling int required 1..1000000000 The most the learned limit may reach (the policy's limit, usually).
--- @arg floor int default=1 1..1000000000 The least it may fall to.
--- @arg decrease_ppm int default=500000 1..999999 The factor an overload multiplies by, in millionths (500000: halve).
--- @arg increase int default=1 1..1000000000 Units a success period adds back.
--- @arg success_period_ms int default=1000 1..86400000 How long after the last change a success may add a step.
--- @arg cooldown_ms int default=1000 0..86400000 Overloads within this long of the last decrease do not decrease again (one burst of 429s is one event).
--- @arg retry_after_ms int default=0 0..86400000 The upstream's Retry-After: the target is paused until now + this (0: no pause).
--- @arg now_ms int optional 0..140737488355328 Clock override in ms; Redis TIME when omitted.
--- @return learned int The learned limit after this answer.
--- @return paused_until_ms int When the pause ends (0 or in the past: not paused).
--- @return version int The global policy version after this call.
--- @return changed bool 1 if this answer changed the state.
--- @include "lib/clock"
--- @args

local version_key, state_key = KEYS[1], KEYS[2]
if floor > ceiling then floor = ceiling end
local now = rl_now_ms(now_ms)
local learned, decreased_ms, increased_ms, paused_until = ceiling, 0, 0, 0
local raw = redis.call('GET', state_key)
if raw then
  local a, b, c, d = string.match(raw, '^(%d+):(%d+):(%d+):(%d+)$')
  if a then learned, decreased_ms, increased_ms, paused_until = tonumber(a), tonumber(b), tonumber(c), tonumber(d) end
end
local before_learned, before_pause, before_decreased = learned, paused_until, decreased_ms
if learned > ceiling then learned = ceiling end
if learned < floor then learned = floor end
if outcome == 'overload' then
  if decreased_ms == 0 or now - decreased_ms >= cooldown_ms then
    local down = math.floor(learned * decrease_ppm / 1000000)
    if down < floor then down = floor end
    learned = down
    decreased_ms = now
  end
  if retry_after_ms > 0 and now + retry_after_ms > paused_until then paused_until = now + retry_after_ms end
elseif learned < ceiling and now - math.max(decreased_ms, increased_ms) >= success_period_ms then
  learned = learned + increase
  if learned > ceiling then learned = ceiling end
  increased_ms = now
end
local version = tonumber(redis.call('GET', version_key) or '0') or 0
local changed = 0
local state = string.format('%d:%d:%d:%d', learned, decreased_ms, increased_ms, paused_until)
if learned ~= before_learned or paused_until ~= before_pause then
  changed = 1
  version = version + 1
  redis.call('SET', state_key, state)
  redis.call('SET', version_key, string.format('%d', version))
  redis.pcall('PUBLISH', 'redlimit:policy', string.format('%d adaptive:%s', version, target))
elseif decreased_ms ~= before_decreased then
  -- An overload at the floor: the limit stays, but the next increase waits a period from now.
  redis.call('SET', state_key, state)
end
return rl_reply({ learned, paused_until, version, changed })
