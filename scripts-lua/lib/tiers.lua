--- One key per subject for all of its limits (tiers, tiers_peek, tiers_refund, tiers_reset): the
--- states of the limits of `specs`, in order, joined by '|' into one string value, an empty field
--- for a limit that is full (no state). Each state is what that limit's own key would hold, in
--- its self-describing form (rl_plain_forms), so a state that outlives its own expiry (another
--- limit keeps the key) reads as full, never as a later window's. The key expires when the last
--- of its states would (PXAT on the server clock; PX plus grace on a caller's), and is deleted
--- when none is left. A write rewrites every state: a limit whose state is stale (back to full)
--- is written back empty.
--- One GET and at most one SET per decision, whatever the number of limits: what a decision over
--- minute, hour and day tiers of one subject costs Redis is mostly what one limit costs.
--- @include "lib/multi"

--- The algorithms whose state is one string (the ones a subject's key can hold).
local RL_TIERS_ALGOS = { gcra = true, token_bucket = true, fixed_window = true, sliding_window = true, quota = true }

--- Comma-separated integer lists (costs, shares) already parsed, by kind then string: a
--- Functions library keeps them between calls (the same "1,1,1" on most calls). Read only. At
--- most 256 entries per kind, then it starts over.
local rl_tiers_lists = { costs = {}, shares = {} }
local rl_tiers_lists_n = { costs = 0, shares = 0 }

--- `raw` ("1,250,1") as a list of `count` integers in 0..max, or nil when omitted (nil or '').
--- `d` numbers the decision in messages.
local function rl_tiers_list(script, kind, raw, count, max, d)
  if raw == nil or raw == '' then return nil end
  local memo = rl_tiers_lists[kind]
  local known = memo[raw]
  if known ~= nil and #known == count then return known end
  local out = {}
  for field in string.gmatch(raw .. ',', '([^,]*),') do
    local i = #out + 1
    if #field > 16 or not string.find(field, '^%d+$') then
      rl_fail(script, string.format('%s[%d] must be %d comma-separated decimal integers, got "%s"', kind, d, count, string.sub(raw, 1, 80)))
    end
    local n = tonumber(field)
    if n > max then
      rl_fail(script, string.format('%s[%d] entry %d must be between 0 and %d, got %s', kind, d, i, max, field))
    end
    out[i] = n
  end
  if #out ~= count then
    rl_fail(script, string.format('%s[%d] has %d entries for %d limit(s)', kind, d, #out, count))
  end
  if rl_tiers_lists_n[kind] >= 256 then
    memo = {}
    rl_tiers_lists[kind], rl_tiers_lists_n[kind] = memo, 0
  end
  memo[raw] = out
  rl_tiers_lists_n[kind] = rl_tiers_lists_n[kind] + 1
  return out
end

--- The specs valid for the largest cost asked of each limit (`costs[j]`), every one an algorithm
--- a subject's key can hold.
local function rl_check_tiers_costs(script, count, specs, costs)
  rl_check_specs_costs(script, count, specs, costs)
  local limits = rl_specs_checked
  for j = 1, count do
    local algo = limits[j].algo
    if not RL_TIERS_ALGOS[algo] then
      -- Not this call's limits after all: nothing handed over to the next.
      rl_specs_checked, rl_specs_checked_for = nil, nil
      rl_fail(script, string.format('specs[%d] is %s: a subject\'s key holds gcra, token_bucket, fixed_window, sliding_window and quota limits only', j, algo))
    end
  end
end

--- tiers and tiers_peek: what a call needs of its specs beyond each decision's costs, by specs
--- string: the limits parsed and checked for every parameter but the cost (`limits`: the parsed
--- fields read only; cost and share_ppm are scratch, set by whoever reads them first),
--- and by tz_rules string (`zoned`, '' for none) the limits with their zones and one evaluator
--- per limit, built below. A Functions library keeps them between calls, so a client that
--- sends the same specs on every call parses, checks and builds them once (an EVAL script starts
--- empty each call). At most 64 specs, 8 tz_rules strings of at most 4096 bytes each per specs;
--- then it starts over (longer tz_rules are built for their call alone).
local rl_tiers_plans, rl_tiers_plans_n = {}, 0

--- Every decision's costs and shares parsed (as decision.cost_list / share_list: nil = 1 each,
--- no class), the specs valid for the largest cost asked of each limit, and every spec an
--- algorithm a subject's key can hold. Specs seen before (rl_tiers_plans) were checked then:
--- only costs above 1 are checked again (what rl_multi_check tests of a cost).
local function rl_check_tiers_specs(script, count, specs, decisions)
  -- nil while no decision has a cost list (every cost is 1).
  local costs, defaults = nil, false
  for d = 1, #decisions do
    local decision = decisions[d]
    local list = rl_tiers_list(script, 'costs', decision.costs, count, 1000000000000000, d)
    decision.cost_list = list
    if decision.shares then decision.share_list = rl_tiers_list(script, 'shares', decision.shares, count, 1000000, d) end
    if list then
      if not costs then
        costs = {}
        for j = 1, count do costs[j] = 0 end
      end
      for j = 1, count do
        if list[j] > costs[j] then costs[j] = list[j] end
      end
    else
      defaults = true
    end
  end
  if costs and defaults then
    for j = 1, count do
      if costs[j] < 1 then costs[j] = 1 end
    end
  end
  local plan = rl_tiers_plans[specs]
  if plan ~= nil and plan.count == count then
    if costs then
      local limits = plan.limits
      for j = 1, count do
        local algo = limits[j].algo
        if costs[j] > 1000000000 and algo ~= 'quota' then rl_multi_need(script, j, algo, 'cost', costs[j], 0, 1000000000) end
      end
    end
    return
  end
  if not costs then
    costs = {}
    for j = 1, count do costs[j] = 1 end
  end
  rl_check_tiers_costs(script, count, specs, costs)
  -- The body finds the limits here, not in the hand-over.
  local limits = rl_specs_checked
  rl_specs_checked, rl_specs_checked_for = nil, nil
  if rl_tiers_plans_n >= 64 then rl_tiers_plans, rl_tiers_plans_n = {}, 0 end
  rl_tiers_plans[specs] = { count = #limits, limits = limits, zoned = {}, zoned_n = 0 }
  rl_tiers_plans_n = rl_tiers_plans_n + 1
end

--- tiers_reserve: one group per limit (cost, share_ppm), as many as specs has limits, each cost
--- valid for its limit, every spec one a subject's key can hold.
local function rl_check_tiers_items(script, count, specs, items)
  if #items ~= count then rl_fail(script, string.format('%d limit group(s) for %d spec(s)', #items, count)) end
  local costs = {}
  for j = 1, count do costs[j] = items[j].cost end
  rl_check_tiers_costs(script, count, specs, costs)
end

--- The pattern that splits a value of n states into its n fields, by n (built once each).
local rl_tiers_patterns = {}

--- The limits' states in `stored` (the key's value; false: none): a list of `count` strings,
--- false for a limit without state. A value of another shape is WRONGSTATE. One match for all
--- the fields (a gmatch would make a closure and step field by field).
local function rl_tiers_split(script, key, stored, count)
  if not stored then
    local segs = {}
    for j = 1, count do segs[j] = false end
    return segs
  end
  local pattern = rl_tiers_patterns[count]
  if pattern == nil then
    pattern = '^' .. string.rep('([^|]*)|', count - 1) .. '([^|]*)$'
    rl_tiers_patterns[count] = pattern
  end
  local segs = { string.match(stored, pattern) }
  if segs[1] == nil then rl_fail_state(script, key) end
  for j = 1, count do
    if segs[j] == '' then segs[j] = false end
  end
  return segs
end

--- adopt (the upgrade from a key per limit): the names of a subject's limits, '+'-joined in
--- specs order as its key names them ("m+h+d" in `rl:{alice}:m+h+d`). A key that holds nothing
--- then reads its limits' states from the keys each had with a key per limit: the key with that
--- segment (right after the hash tag's "}:") replaced by the limit's name (`rl:{alice}:m`, ...;
--- `rl:{t}:m+h+d:alice` -> `rl:{t}:m:alice`). Those keys are deleted when the subject's key is
--- written, so their states move into it once; a key that does not name the segment so adopts
--- nothing. Parsed adopt strings by string (a Functions library keeps them; at most 64).
local rl_tiers_adopts, rl_tiers_adopts_n = {}, 0

--- `adopt` as { seg = '}:' .. adopt, names = {...} }, `count` names; nil when omitted (nil or '').
local function rl_tiers_adopt(script, adopt, count)
  if adopt == nil or adopt == '' then return nil end
  local known = rl_tiers_adopts[adopt]
  if known == nil then
    local names = {}
    for name in string.gmatch(adopt .. '+', '([^+]*)%+') do
      if not string.find(name, '^[%w_%-]+$') then
        rl_fail(script, string.format('adopt must be the limits\' names joined by +, each of letters, digits, _ or -, got "%s"', string.sub(adopt, 1, 64)))
      end
      names[#names + 1] = name
    end
    known = { seg = '}:' .. adopt, names = names }
    if rl_tiers_adopts_n >= 64 then rl_tiers_adopts, rl_tiers_adopts_n = {}, 0 end
    rl_tiers_adopts[adopt] = known
    rl_tiers_adopts_n = rl_tiers_adopts_n + 1
  end
  if #known.names ~= count then
    rl_fail(script, string.format('adopt names %d limit(s) for %d spec(s)', #known.names, count))
  end
  return known
end

--- The keys `key`'s limits had with a key per limit (see adopt), or nil when `key` does not name
--- its limits as adopt says.
local function rl_tiers_own_keys(key, adopt)
  local seg = adopt.seg
  local i = string.find(key, seg, 1, true)
  if i == nil then return nil end
  local e = i + #seg
  if e <= #key and string.byte(key, e) ~= 58 then return nil end -- the segment ends at ':' or the key's end
  local head, tail = string.sub(key, 1, i + 1), string.sub(key, e)
  local names, keys = adopt.names, {}
  for j = 1, #names do keys[j] = head .. names[j] .. tail end
  return keys
end

--- A state a limit's own key holds (any form its script writes: the packed forms are read
--- against `now`, as that script reads them while the key lives) as a subject's key holds it:
--- a self-describing form (rl_plain_forms is set while a tiers script runs), or false when full.
local function rl_tiers_adopted(key, limit, stored, now, simulated)
  local algo = limit.algo
  -- gcra's forms and quota's "start:count" name absolute times already: checked, kept as they are.
  if algo == 'gcra' then
    if not string.find(stored, '^%d+$') and not string.find(stored, '^%d+:%d+$') then rl_fail_state('gcra', key) end
    return stored
  elseif algo == 'quota' then
    if not string.find(stored, '^%-?%d+:%d+$') then rl_fail_state('quota', key) end
    return stored
  end
  local cmd, value
  if algo == 'token_bucket' then
    local whole, frac, ts = rl_token_bucket_read(key, limit.limit, limit.period_ms, limit.burst, now, stored)
    local w = rl_token_bucket_writes(key, whole, frac, ts, limit.limit, limit.period_ms, limit.burst, now, simulated)[1]
    cmd, value = w[1], w[3]
  elseif algo == 'fixed_window' then
    local start = rl_window_start(now, limit.period_ms, limit.offset_ms)
    local used = rl_counter_read('fixed_window', key, start, start % 4194304, stored)
    local _
    cmd, _, value = rl_counter_write(key, start, start + limit.period_ms, used, now, simulated, nil)
  else
    local start = rl_window_start(now, limit.period_ms, 0)
    local cur, prev = rl_sliding_window_read(key, start, limit.period_ms, stored)
    local _
    cmd, _, value = rl_sliding_window_write(key, start, limit.period_ms, cur, prev, now, simulated)
  end
  if cmd == 'SET' then return value end
  return false
end

--- The value of a subject's key (false: none). With `adopt` (rl_tiers_adopt), a key that holds
--- nothing reads its limits' states from their own keys (a key per limit), as rl_tiers_adopted
--- makes them: the value they make together (false when none has state), and the list of those
--- keys that hold a string (deleted when the subject's key is written). A limit's own key of another Redis
--- type (an older release's hash) is left alone and read as full; one holding a value its
--- algorithm cannot read is WRONGSTATE on it. A new subject (no own key) costs a GET per limit
--- more than without adopt (the client sends adopt only while own keys may exist).
local function rl_tiers_get(script, key, limits, count, adopt, now, simulated)
  local stored = rl_call('GET', key)
  if stored or adopt == nil then return stored, nil end
  local own = rl_tiers_own_keys(key, adopt)
  if own == nil then return false, nil end
  local segs, found = nil, nil
  for j = 1, count do
    -- GET each (MGET measured no cheaper, and is one more command for an ACL to allow).
    local ok, v = pcall(rl_call, 'GET', own[j])
    if ok and v then
      if found == nil then found, segs = {}, {} end
      found[#found + 1] = own[j]
      if string.find(v, '|', 1, true) then rl_fail_state(limits[j].algo, own[j]) end
      segs[j] = rl_tiers_adopted(own[j], limits[j], v, now, simulated)
    end
  end
  if found == nil then return false, nil end
  for j = 1, count do
    if not segs[j] then segs[j] = '' end
  end
  return table.concat(segs, '|', 1, count), found
end

--- A limit's write as an algorithm returns it (flat, a list of one, or none) turned into its new
--- state (a string, or false when it is deleted: full) and the ms until that state expires. nil
--- when there is no write.
local function rl_tiers_written(now, cmd, value, opt, at)
  if type(cmd) == 'table' then
    local w = cmd[1]
    if not w then return nil end
    cmd, value, opt, at = w[1], w[3], w[4], w[5]
  end
  if not cmd then return nil end
  if cmd ~= 'SET' then return false, 0 end
  if opt == 'PXAT' then return value, tonumber(at) - now end
  return value, tonumber(at) - RL_SIMULATED_GRACE_MS
end

--- Stores the states segs[1 .. count] in `key` (had: whether it held a value), expiring `ttl` ms
--- after `now` (the longest any state needs); deleted when no state is left.
--- `adopted`: the limits' own keys its states came from (rl_tiers_get), deleted with the write.
local function rl_tiers_store(key, had, segs, count, ttl, now, simulated, adopted)
  if adopted then
    rl_call('DEL', rl_unpack(adopted))
    had = false
  end
  local any = false
  for j = 1, count do
    if segs[j] then any = true else segs[j] = '' end
  end
  if not any or ttl <= 0 then
    if had then rl_call('DEL', key) end
    return
  end
  if simulated then
    rl_call('SET', key, table.concat(segs, '|', 1, count), 'PX', rl_format('%d', ttl + RL_SIMULATED_GRACE_MS))
  else
    rl_call('SET', key, table.concat(segs, '|', 1, count), 'PXAT', rl_format('%d', now + ttl))
  end
end

--- The new states of a decision's limits, reused from call to call (a Functions library keeps
--- it): entries past a call's count are stale and never read.
local rl_tiers_news = {}

--- One limit's evaluation, for any number of calls: a function(key, cost, keep, stored, now,
--- simulated) with rl_multi_item's results (trim and apply_now off), and the capacity its
--- priority classes are shares of. A window's start or a calendar period is computed when `now`
--- leaves the one it kept (each `now` has one period: the period kept holds it or is replaced).
local function rl_tiers_evaluator(item)
  local algo, limit, period_ms, burst = item.algo, item.limit, item.period_ms, item.burst
  if algo == 'gcra' then
    return function(key, cost, keep, stored, now, simulated)
      return rl_gcra_eval(key, limit, period_ms, burst, cost, now, simulated, false, keep, stored)
    end, burst
  elseif algo == 'sliding_window' then
    local start, after = 0, -1
    return function(key, cost, keep, stored, now, simulated)
      if now >= after or now < start then
        start = rl_window_start(now, period_ms, 0)
        after = start + period_ms
      end
      return rl_sliding_window_decide(key, limit, period_ms, start, cost, now, simulated, keep, stored)
    end, limit
  elseif algo == 'quota' then
    local unit, zone = item.unit, item.zone or item.offset_ms
    local start, period_end = 0, -1
    return function(key, cost, keep, stored, now, simulated)
      if now >= period_end or now < start then start, period_end = rl_calendar_period(now, unit, zone) end
      return rl_counter_take(key, limit, start, period_end, rl_counter_read('quota', key, start, nil, stored), cost, now, simulated, keep)
    end, limit
  elseif algo == 'fixed_window' then
    local offset_ms = item.offset_ms
    local start, window_end, tag = 0, -1, 0
    return function(key, cost, keep, stored, now, simulated)
      if now >= window_end or now < start then
        start = rl_window_start(now, period_ms, offset_ms)
        window_end, tag = start + period_ms, start % 4194304
      end
      return rl_counter_take(key, limit, start, window_end, rl_counter_read('fixed_window', key, start, tag, stored), cost, now, simulated, keep, tag)
    end, limit
  end
  return function(key, cost, keep, stored, now, simulated)
    return rl_token_bucket_eval(key, limit, period_ms, burst, cost, now, simulated, keep, stored)
  end, burst
end

--- Each limit's evaluator (rl_tiers_evaluator) and the capacities priority classes are shares of.
local function rl_tiers_evaluators(limits)
  local evals, caps = {}, {}
  for j = 1, #limits do evals[j], caps[j] = rl_tiers_evaluator(limits[j]) end
  return evals, caps
end

--- The limits (zoned by tz_rules), evaluators and capacities of a tiers / tiers_peek call whose
--- prologue checked `specs` (rl_check_tiers_specs: its plan is there).
local function rl_tiers_plan(script, count, specs, tz_rules)
  local plan = rl_tiers_plans[specs]
  local tz = tz_rules or ''
  local zoned = plan.zoned[tz]
  if zoned ~= nil then return zoned end
  local limits = plan.limits
  if tz_rules ~= nil then
    -- The zones go on copies: the plan's limits stay as checked.
    local copies = {}
    for j = 1, count do
      local k = limits[j]
      copies[j] = { algo = k.algo, limit = k.limit, period_ms = k.period_ms, offset_ms = k.offset_ms, cost = 0, burst = k.burst, unit = k.unit }
    end
    limits = copies
    rl_multi_zones(script, tz_rules, limits)
  end
  local evals, caps = rl_tiers_evaluators(limits)
  zoned = { limits = limits, evals = evals, caps = caps }
  if #tz <= 4096 then
    if plan.zoned_n >= 8 then plan.zoned, plan.zoned_n = {}, 0 end
    plan.zoned[tz] = zoned
    plan.zoned_n = plan.zoned_n + 1
  end
  return zoned
end

--- One decision over every limit of `key` (all-or-nothing, as multi decides), its results into
--- reply[o + 1 ..]: per limit allowed, remaining, reset_after_ms, retry_after_ms. `evals`, `caps`:
--- rl_tiers_evaluators'. `commit`: the admitted decision is written (tiers); else nothing is
--- (tiers_peek). `adopt`, `limits`: rl_tiers_get's (adopt nil: none).
local function rl_tiers_decide(script, key, decision, evals, caps, now, simulated, commit, reply, o, adopt, limits)
  local count = #evals
  local stored, adopted = rl_tiers_get(script, key, limits, count, adopt, now, simulated)
  local segs = rl_tiers_split(script, key, stored, count)
  local costs, shares = decision.cost_list, decision.share_list
  local all, ttl = true, 0
  local news = rl_tiers_news
  for j = 1, count do
    local cost, keep = 1, 0
    if costs then cost = costs[j] end
    if shares then
      local share = shares[j]
      if share < 1000000 then keep = rl_keep(caps[j], share) end
    end
    local allowed, remaining, reset, retry, cmd, _, value, opt, at = evals[j](key, cost, keep, segs[j], now, simulated)
    local r = o + 4 * j - 3
    reply[r], reply[r + 1], reply[r + 2], reply[r + 3] = allowed, remaining, reset, retry
    if allowed == 1 then
      local new, new_ttl
      if cmd == 'SET' then
        -- A flat write (gcra, the windows, quota) expires exactly when the limit is full again:
        -- its reset_after (the expiry string it formatted is not parsed back).
        new, new_ttl = value, reset
      elseif cmd then
        new, new_ttl = rl_tiers_written(now, cmd, value, opt, at)
      end
      if new == nil then
        -- Not written (cost 0): kept while it has something to say, else dropped.
        if reset > 0 then new, new_ttl = segs[j], reset else new, new_ttl = false, 0 end
      end
      news[j] = new
      if new_ttl > ttl then ttl = new_ttl end
    else
      all = false
    end
  end
  if commit and all then
    rl_tiers_store(key, stored, news, count, ttl, now, simulated, adopted)
    return
  end
  -- Nothing was taken: report what each admitting limit holds now, not what it would hold.
  for j = 1, count do
    local r = o + 4 * j - 3
    local cost = 1
    if costs then cost = costs[j] end
    if reply[r] == 1 and cost > 0 then
      local keep = 0
      if shares and shares[j] < 1000000 then keep = rl_keep(caps[j], shares[j]) end
      local _, remaining, reset = evals[j](key, 0, keep, segs[j], now, simulated)
      reply[r + 1], reply[r + 2] = remaining, reset
    end
  end
end

--- Which limit's state in `key` cannot be read (a decision that raised WRONGSTATE): each is
--- read again at cost 0; 1 when none is found (the value's shape, or another Redis type). With
--- `adopt` and no value, the states of the limits' own keys, read as rl_tiers_get reads them.
local function rl_tiers_failing_limit(key, limits, now, simulated, adopt)
  local ok, stored = pcall(rl_call, 'GET', key)
  if not ok then return 1 end
  local fields = {}
  if stored then
    for seg in string.gmatch(stored .. '|', '([^|]*)|') do fields[#fields + 1] = seg end
    if #fields ~= #limits then return 1 end
  else
    local own = adopt and rl_tiers_own_keys(key, adopt)
    if not own then return 1 end
    for j = 1, #limits do
      local got, v = pcall(rl_call, 'GET', own[j])
      fields[j] = ''
      if got and v then
        if string.find(v, '|', 1, true) then return j end
        local converted, plain = pcall(rl_tiers_adopted, own[j], limits[j], v, now, simulated)
        if not converted then return j end
        fields[j] = plain or ''
      end
    end
  end
  for j = 1, #limits do
    if fields[j] ~= '' then
      limits[j].cost, limits[j].share_ppm = 0, nil
      if not pcall(rl_multi_item, key, limits[j], now, simulated, false, false, fields[j]) then return j end
    end
  end
  return 1
end

--- tiers / tiers_peek: each key a decision of its own over every limit, in order (a key given
--- again is decided again, after the decisions before it). A decision whose key holds another
--- Redis type or a value that is not these limits' states fails alone: -1 on each of its limits,
--- the code (rl_key_error) on the one at fault (the first when it is the key), nothing written.
--- `adopt`: rl_tiers_adopt's (nil: none).
local function rl_tiers_batch(script, keys, decisions, plan, now, simulated, commit, adopt)
  local limits, evals, caps = plan.limits, plan.evals, plan.caps
  local count = #limits
  local reply = { now }
  for d = 1, #keys do
    local o = 1 + (d - 1) * count * 4
    local ok, err = pcall(rl_tiers_decide, script, keys[d], decisions[d], evals, caps, now, simulated, commit, reply, o, adopt, limits)
    if not ok then
      local code = rl_key_error(err)
      local bad = rl_tiers_failing_limit(keys[d], limits, now, simulated, adopt)
      for j = 1, count do
        local r = o + 4 * j - 3
        reply[r], reply[r + 1], reply[r + 2], reply[r + 3] = -1, 0, 0, 0
        if j == bad then reply[r + 1] = code end
      end
    end
  end
  return reply
end

--- Runs fn(...) with rl_plain_forms set, and clears it whatever fn does (a Functions library
--- keeps it between calls: another script's writes must keep their packed forms).
local function rl_tiers_run(fn, ...)
  rl_plain_forms = true
  local ok, result = pcall(fn, ...)
  rl_plain_forms = false
  if not ok then
    if type(result) == 'string' and string.find(result, '^%u+ ') then error({ err = result }) end
    error(result)
  end
  return result
end

--- tiers_refund: gives each limit of `key` its cost back (never above full); per limit the units
--- it holds after and the ms until it is full again, then whether the key changed. `adopt`:
--- rl_tiers_get's.
local function rl_tiers_refund(script, key, limits, costs, now, simulated, adopt)
  local count = #limits
  local stored, adopted = rl_tiers_get(script, key, limits, count, adopt, now, simulated)
  local segs = rl_tiers_split(script, key, stored, count)
  local reply, ttl, changed = {}, 0, false
  for j = 1, count do
    local limit = limits[j]
    local cost = costs[j]
    local remaining, reset, new, seg_ttl
    if cost > 0 and segs[j] then
      local algo, stored_j = limit.algo, segs[j]
      local writes
      if algo == 'gcra' then
        remaining, reset, writes = rl_gcra_refund(key, limit.limit, limit.period_ms, limit.burst, cost, now, simulated, stored_j)
      elseif algo == 'token_bucket' then
        remaining, reset, writes = rl_token_bucket_refund(key, limit.limit, limit.period_ms, limit.burst, cost, now, simulated, stored_j)
      elseif algo == 'fixed_window' then
        remaining, reset, writes = rl_fixed_window_refund(key, limit.limit, limit.period_ms, limit.offset_ms, cost, now, simulated, stored_j)
      elseif algo == 'sliding_window' then
        remaining, reset, writes = rl_sliding_window_refund(key, limit.limit, limit.period_ms, cost, now, simulated, stored_j)
      else
        remaining, reset, writes = rl_quota_refund(key, limit.limit, limit.unit, limit.zone or limit.offset_ms, cost, now, simulated, stored_j)
      end
      new, seg_ttl = rl_tiers_written(now, writes)
      changed = true
    else
      limit.cost, limit.share_ppm = 0, nil
      local _
      _, remaining, reset = rl_multi_item(key, limit, now, simulated, false, false, segs[j])
      if reset > 0 then new, seg_ttl = segs[j], reset else new, seg_ttl = false, 0 end
    end
    segs[j] = new
    if seg_ttl > ttl then ttl = seg_ttl end
    reply[2 * j - 1], reply[2 * j] = remaining, reset
  end
  if changed then rl_tiers_store(key, stored, segs, count, ttl, now, simulated, adopted) end
  return reply, changed
end
