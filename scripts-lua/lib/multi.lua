--- One decision over many limits, all-or-nothing: every limit is evaluated on the same clock
--- reading, and only if all admit are their writes applied. Shared by multi and multi_peek.
--- Each item may carry a priority class (share_ppm, lib/priority), and an item of algo
--- concurrency holds a slot for its holder id: admitted with the rate items or not at all.
--- @include "lib/algo_gcra"
--- @include "lib/algo_token_bucket"
--- @include "lib/algo_fixed_window"
--- @include "lib/algo_sliding_window"
--- @include "lib/algo_sliding_log"
--- @include "lib/algo_quota"
--- @include "lib/algo_block"
--- @include "lib/algo_concurrency"
--- @include "lib/priority"

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

--- batch: the one limit every decision shares, checked once with the largest cost asked.
local function rl_check_batch_spec(script, algo, limit, period_ms, burst, offset_ms, unit, decisions)
  local cost = 0
  for i = 1, #decisions do
    if decisions[i].cost > cost then cost = decisions[i].cost end
  end
  rl_multi_check(script, nil, { algo = algo, limit = limit, period_ms = period_ms, burst = burst, offset_ms = offset_ms, unit = unit, cost = cost })
end

--- multi_batch's specs strings already parsed and checked (every parameter but the cost), by the
--- string: the limits' values. A Functions library keeps it between calls (an EVAL script starts
--- empty each call), so a client that sends the same specs on every call parses them once; each
--- call still gets tables of its own (the body sets cost, share_ppm and zone on them). At most 64
--- entries, then it starts over.
local rl_specs_memo, rl_specs_memo_n = {}, 0
--- The limits the prologue's check just made, for the body of the same call (not copied twice).
local rl_specs_checked, rl_specs_checked_for = nil, nil

--- multi_batch: the limits every decision shares, parsed from `algo,limit,period_ms,burst,offset_ms,unit;...`.
local function rl_multi_batch_parse(script, count, specs)
  local limits = {}
  for spec in string.gmatch(specs, '[^;]+') do
    local algo, limit, period_ms, burst, offset_ms, unit = string.match(spec, '^(%l[%l_]*),(%d*),(%d*),(%d*),(%-?%d*),(%l*)$')
    local i = #limits + 1
    if not algo or (algo ~= 'gcra' and algo ~= 'token_bucket' and algo ~= 'fixed_window' and algo ~= 'sliding_window' and algo ~= 'sliding_log' and algo ~= 'quota' and algo ~= 'block') then
      rl_fail(script, string.format('specs[%d] must be algo,limit,period_ms,burst,offset_ms,unit with a known algo, got "%s"', i, string.sub(spec, 1, 80)))
    end
    if #limit > 16 or #period_ms > 16 or #burst > 16 or #offset_ms > 16 or (unit ~= '' and unit ~= 'day' and unit ~= 'week' and unit ~= 'month') then
      rl_fail(script, string.format('specs[%d] has a field out of range: "%s"', i, string.sub(spec, 1, 80)))
    end
    local item = { algo = algo, limit = tonumber(limit) or 1, period_ms = tonumber(period_ms), offset_ms = tonumber(offset_ms) or 0, cost = 0 }
    item.burst = tonumber(burst) or item.limit
    if unit ~= '' then item.unit = unit end
    limits[i] = item
  end
  if #limits ~= count then rl_fail(script, string.format('specs has %d limit(s), count says %d', #limits, count)) end
  return limits
end

--- The limits of a multi_batch call (fresh tables, cost 0): from the memo when these specs were
--- parsed and checked before, else parsed (the caller checks them, then rl_multi_batch_remember).
local function rl_multi_batch_specs(script, count, specs)
  if rl_specs_checked_for == specs then
    local limits = rl_specs_checked
    rl_specs_checked, rl_specs_checked_for = nil, nil
    -- A hand-over a call left when it failed between its check and its body (tiers_reserve
    -- refusing its keys) can meet a later call of the same specs and another count.
    if #limits == count then return limits, true end
  end
  local known = rl_specs_memo[specs]
  if known == nil or #known ~= count then return rl_multi_batch_parse(script, count, specs), false end
  local limits = {}
  for i = 1, count do
    local k = known[i]
    limits[i] = { algo = k.algo, limit = k.limit, period_ms = k.period_ms, offset_ms = k.offset_ms, cost = 0, burst = k.burst, unit = k.unit }
  end
  return limits, true
end

--- The specs are valid for the largest cost asked of each limit (`costs[j]`). Specs seen before
--- were checked then: only the costs are (what rl_multi_check tests of a cost).
local function rl_check_specs_costs(script, count, specs, costs)
  local limits, known = rl_multi_batch_specs(script, count, specs)
  for j = 1, count do
    local cost = costs[j]
    local limit = limits[j]
    limit.cost = cost
    if not known then
      rl_multi_check(script, j, limit)
    elseif cost > 1000000000 and limit.algo ~= 'quota' and limit.algo ~= 'block' then
      rl_multi_need(script, j, limit.algo, 'cost', cost, 0, 1000000000)
    end
  end
  if not known then
    if rl_specs_memo_n >= 64 then rl_specs_memo, rl_specs_memo_n = {}, 0 end
    -- Copies read only the six parsed fields, which nothing changes (the body sets cost,
    -- share_ppm and zone on this call's tables).
    rl_specs_memo[specs] = limits
    rl_specs_memo_n = rl_specs_memo_n + 1
  end
  rl_specs_checked, rl_specs_checked_for = limits, specs
end

--- The specs are valid for every item's cost, and the items are whole decisions.
local function rl_check_multi_batch_specs(script, count, specs, items)
  if #items % count ~= 0 then rl_fail(script, string.format('%d key(s) are not whole decisions of %d limit(s)', #items, count)) end
  local costs = {}
  for j = 1, count do
    local cost = 0
    for i = j, #items, count do
      if items[i].cost > cost then cost = items[i].cost end
    end
    costs[j] = cost
  end
  rl_check_specs_costs(script, count, specs, costs)
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

--- One limit's evaluation chosen once per call (batch, multi_batch, tiers: the limit is the same
--- for every decision, at one `now`): a function(key, cost, keep, stored) with rl_multi_item's
--- results, and the capacity its priority classes are shares of. `trim` and `apply_now` as
--- rl_multi_item's; `stored` (lib/tiers: the state already read) as its, for the string algorithms.
local function rl_multi_evaluator(item, now, simulated, trim, apply_now)
  local algo, limit, period_ms, burst = item.algo, item.limit, item.period_ms, item.burst
  if algo == 'gcra' then
    return function(key, cost, keep, stored)
      return rl_gcra_eval(key, limit, period_ms, burst, cost, now, simulated, apply_now, keep, stored)
    end, burst
  elseif algo == 'sliding_window' then
    -- Every decision of the call is in the same window: its start once.
    local start = rl_window_start(now, period_ms, 0)
    return function(key, cost, keep, stored)
      return rl_sliding_window_decide(key, limit, period_ms, start, cost, now, simulated, keep, stored)
    end, limit
  elseif algo == 'quota' then
    -- The same calendar period for every decision: computed once (rl_quota_eval's steps).
    local start, period_end = rl_calendar_period(now, item.unit, item.zone or item.offset_ms)
    return function(key, cost, keep, stored)
      return rl_counter_take(key, limit, start, period_end, rl_counter_read('quota', key, start, nil, stored), cost, now, simulated, keep)
    end, limit
  elseif algo == 'fixed_window' then
    -- The same window for every decision (rl_fixed_window_eval's steps).
    local start = rl_window_start(now, period_ms, item.offset_ms)
    local window_end, tag = start + period_ms, start % 4194304
    return function(key, cost, keep, stored)
      return rl_counter_take(key, limit, start, window_end, rl_counter_read('fixed_window', key, start, tag, stored), cost, now, simulated, keep, tag)
    end, limit
  elseif algo == 'token_bucket' then
    return function(key, cost, keep, stored)
      return rl_token_bucket_eval(key, limit, period_ms, burst, cost, now, simulated, keep, stored)
    end, burst
  elseif algo == 'sliding_log' then
    return function(key, cost, keep)
      return rl_sliding_log_eval(key, limit, period_ms, cost, now, simulated, trim, keep)
    end, limit
  elseif algo == 'block' then
    return function(key)
      local until_ms = rl_block_read(key, now)
      if until_ms then return 0, 0, until_ms - now, until_ms - now end
      return 1, 0, 0, 0
    end, limit
  end
  local holder = item.holder
  return function(key, cost, keep)
    return rl_concurrency_eval(key, limit, period_ms, holder, cost, now, simulated, trim, keep)
  end, limit
end

--- Which item of a decision that raised holds the key at fault: each is read again at cost 0,
--- which writes nothing (only a failed decision pays for this).
local function rl_multi_failing_item(keys, items, now, simulated)
  for i = 1, #items do
    local item = items[i]
    local saved = item.cost
    item.cost = 0
    local ok = pcall(rl_multi_item, keys[i], item, now, simulated, false)
    item.cost = saved
    if not ok then return i end
  end
  return 0
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

--- batch, and node_batch with one limit: each key a decision of its own, at its item's cost and
--- priority class (items[i].cost, share_ppm), in order; results after `now` in the reply. A write
--- is made at once (one limit: nothing to roll back). A decision whose key raises fails alone:
--- -1 and its code (rl_key_error) in its remaining, nothing of it written (an algorithm raises at
--- its first access to the key, before any write).
local function rl_batch_decide(keys, items, spec, now, simulated)
  local eval, capacity = rl_multi_evaluator(spec, now, simulated, true, true)
  local reply = { now }
  for i = 1, #items do
    local d = items[i]
    local share = d.share_ppm
    local keep = 0
    if share < 1000000 then keep = rl_keep(capacity, share) end
    local ok, allowed, remaining, reset, retry, cmd, key, value, opt, at = pcall(eval, keys[i], d.cost, keep)
    if not ok then
      allowed, remaining, reset, retry = -1, rl_key_error(allowed), 0, 0
    elseif cmd and allowed == 1 then
      rl_apply_write(cmd, key, value, opt, at)
    end
    local o = 4 * i - 2
    reply[o], reply[o + 1], reply[o + 2], reply[o + 3] = allowed, remaining, reset, retry
  end
  return reply
end

--- multi_batch: decisions over the same `limits` (evaluators chosen once), each all-or-nothing
--- over its own keys (KEYS[d * count + 1 .. d * count + count], groups in `items` alike), in
--- order; per item allowed, remaining, reset_after_ms, retry_after_ms into `reply` after `now`.
--- A decision whose key holds another Redis type or foreign state fails alone (-1 on each of
--- its items, the failing item's code in its remaining; nothing of it written); any other error
--- (BADARG: a key given twice in one decision) fails the call.
local function rl_multi_batch(script, keys, items, limits, now, simulated)
  local count = #limits
  local evals, caps = {}, {}
  for j = 1, count do evals[j], caps[j] = rl_multi_evaluator(limits[j], now, simulated, true, false) end
  local reply = { now }
  -- A decision's writes, flat, five slots each (rl_apply_write's arguments).
  local pending = {}
  -- One decision: its results into reply[o + 1 ..]; its writes only once every limit admitted.
  local function decide(first, o)
    rl_multi_distinct(script, keys, first, count)
    local np, all = 0, true
    for j = 1, count do
      local g = items[first + j]
      local share = g.share_ppm
      local keep = 0
      if share < 1000000 then keep = rl_keep(caps[j], share) end
      local allowed, remaining, reset, retry, cmd, key, value, opt, at = evals[j](keys[first + j], g.cost, keep)
      local r = o + 4 * j - 3
      reply[r], reply[r + 1], reply[r + 2], reply[r + 3] = allowed, remaining, reset, retry
      if allowed == 1 then
        if cmd then
          pending[np + 1], pending[np + 2], pending[np + 3], pending[np + 4], pending[np + 5] = cmd, key, value, opt, at
          np = np + 5
        end
      else
        all = false
      end
    end
    if all then
      for m = 1, np, 5 do
        local key, value = pending[m + 1], pending[m + 2]
        if value ~= nil then
          rl_call(pending[m], key, value, pending[m + 3], pending[m + 4])
        else
          rl_apply_write(pending[m], key)
        end
      end
      return
    end
    -- Nothing was taken: report what each admitting limit holds now, not what it would hold.
    for j = 1, count do
      local at = o + 4 * j - 3
      local g = items[first + j]
      if reply[at] == 1 and g.cost > 0 then
        local limit = limits[j]
        limit.cost, limit.share_ppm = 0, g.share_ppm
        local _, remaining, reset = rl_multi_item(keys[first + j], limit, now, simulated, false)
        reply[at + 1], reply[at + 2] = remaining, reset
      end
    end
  end
  for d = 0, #items / count - 1 do
    local first, o = d * count, 1 + d * count * 4
    local ok, err = pcall(decide, first, o)
    if not ok then
      local code = rl_key_error(err)
      local decision, own = {}, {}
      for j = 1, count do
        own[j] = keys[first + j]
        limits[j].cost, limits[j].share_ppm = 0, nil
        decision[j] = limits[j]
      end
      local bad = rl_multi_failing_item(own, decision, now, simulated)
      for j = 1, count do
        local at = o + 4 * j - 3
        reply[at], reply[at + 1], reply[at + 2], reply[at + 3] = -1, 0, 0, 0
        if j == bad then reply[at + 1] = code end
      end
    end
  end
  return reply
end
