--- @script policy_carry
--- @version 1
--- @summary Carries one subject's limit across a proportional policy change: the same fraction left under the new limit as under the old one, charged once on the limit's new key (a new key epoch).
--- @key target The limit's key under its new epoch (the key the decisions use from now on).
--- @key marker Says the carry was made: `<prefix>:{<tag>}:!carry:<rest of target after the tag>` (no limit key starts with !). Lives until the source read is back to full.
--- @key sources+ The keys the limit had under earlier epochs, newest first, each with its limits in `from`. Same hash tag as target.
--- A no-op when marker exists (carried already) or when no source exists (nothing was used: a
--- fresh key is full). Else the newest existing source is read at cost 0 under its limits (each
--- algorithm's own evaluation, so nothing of the state encodings is known here) and target is
--- charged what the same fraction left implies, floored:
---   left_new = floor(max(left_old, 0) x capacity_new / capacity_old), used_new = capacity_new - left_new,
--- as one call of cost min(used_new, what target has left): decisions made on target before the
--- carry (an instance whose carry failed) are added to, never forgotten, and target never goes
--- below empty. Capacity is burst (gcra, token_bucket) or limit. So whole units left round down
--- (in the subject's disfavour) and a debt (left below 0) carries as empty. The marker expires
--- when the source read is back to full (its reset_after_ms: a carry made again after that
--- charges 0). Sources are left as they are: an instance still deciding under the old version
--- within the documented bound keeps counting there.
--- @arg algo enum:gcra|token_bucket|fixed_window|sliding_window|sliding_log|quota required The limit's algorithm under the new policy.
--- @arg limit int required 1..1000000000 The new limit.
--- @arg from string required maxlen=1024 Each source's limits, in KEYS order, separated by `,`: `algo:limit:period_ms:burst:offset_ms:unit` (unit empty but for quota). A source of another algorithm than the target's is refused.
--- @arg period_ms int default=0 0..31622400000 The new period (not quota).
--- @arg burst int default=0 0..1000000000 The new capacity (gcra, token_bucket; 0: limit).
--- @arg offset_ms int default=0 -50400000..31622399999 fixed_window: window offset; quota: UTC offset.
--- @arg unit enum:day|week|month optional quota: its calendar unit.
--- @arg now_ms int optional 0..140737488355328 Clock override in ms; Redis TIME when omitted.
--- @return carried bool 1 if target was charged (a source existed and something was used).
--- @return source int Which source was read (1 = KEYS[2]); 0 when none was.
--- @return used int Units the target was charged: used_new, or what target had left if less.
--- @return remaining int Whole units left on the target after the carry (-1: carried before).
--- @include "lib/multi"
--- @include "lib/exact"
--- @include "lib/clock"
--- @args

local S = 'policy_carry'
local function spec(i, a, l, p, b, o, u)
  local item = { algo = a, limit = l, period_ms = p, burst = b, offset_ms = o, unit = u, cost = 0 }
  if item.burst == nil or item.burst == 0 then item.burst = item.limit end
  if a == 'quota' then item.period_ms = nil end
  rl_multi_check(S, i, item)
  return item
end
local function capacity(item)
  if item.algo == 'gcra' or item.algo == 'token_bucket' then return item.burst end
  return item.limit
end

local target = spec(nil, algo, limit, period_ms, burst, offset_ms, unit)
local sources = {}
for entry in string.gmatch(from, '[^,]+') do
  local a, l, p, b, o, u = string.match(entry, '^([%w_]+):(%d+):(%d+):(%d+):(%-?%d+):(%a*)$')
  local i = #sources + 1
  if not a then rl_fail(S, string.format('from[%d] must be algo:limit:period_ms:burst:offset_ms:unit, got "%s"', i, string.sub(entry, 1, 60))) end
  if a ~= algo then rl_fail(S, string.format('from[%d] is algo %s, the target is %s: only the same algorithm carries', i, a, algo)) end
  if u == '' then u = nil end
  sources[i] = spec(i, a, tonumber(l), tonumber(p), tonumber(b), tonumber(o), u)
end

if #sources ~= #KEYS - 2 then rl_fail(S, string.format('from has %d source(s) for %d source key(s)', #sources, #KEYS - 2)) end

local now = rl_now_ms(now_ms)
local simulated = now_ms ~= nil
local cap_new = capacity(target)
local target_key, marker_key = KEYS[1], KEYS[2]
if redis.call('EXISTS', marker_key) == 1 then return rl_reply({ 0, 0, 0, -1 }) end
for i = 1, #sources do
  local source_key = KEYS[i + 2]
  if redis.call('EXISTS', source_key) == 1 then
    local src = sources[i]
    local _, left, full_in = rl_multi_item(source_key, src, now, simulated, false, false)
    local cap_old = capacity(src)
    if left < 0 then left = 0 end
    if left > cap_old then left = cap_old end
    local used = cap_new - rl_muldivmod(left, cap_new, cap_old)
    if full_in > 0 then
      local set_opt, _, at = rl_expiry(now, full_in, simulated)
      redis.call('SET', marker_key, '1', set_opt, at)
    end
    local _, room = rl_multi_item(target_key, target, now, simulated, false, false)
    local take = math.min(used, math.max(room, 0))
    if take == 0 then return rl_reply({ 0, i, 0, room }) end
    target.cost = take
    local allowed, remaining, _, _, w_cmd, w_key, w_value, w_opt, w_at = rl_multi_item(target_key, target, now, simulated, true, false)
    if allowed ~= 1 then error({ err = 'ERR redlimit policy_carry: a key refused what it has left' }) end
    rl_apply_write(w_cmd, w_key, w_value, w_opt, w_at)
    return rl_reply({ 1, i, take, remaining })
  end
end
return rl_reply({ 0, 0, 0, cap_new })
