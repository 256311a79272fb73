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

--- The parameters an item's algorithm needs, checked as the single-limit scripts check them.
--- `i` numbers the item in messages (`limit[2]`); nil for a script with one limit (batch).
local function rl_multi_check(script, i, item)
  local function need(name, value, min, max)
    if value == nil then
      rl_fail(script, string.format('%s is required for algo %s', rl_arg_label(name, i), item.algo))
    end
    if value < min or value > max then
      rl_fail(script, string.format('%s must be between %d and %d for algo %s, got %d', rl_arg_label(name, i), min, max, item.algo, value))
    end
  end
  local algo = item.algo
  if algo == 'block' then return end
  if algo == 'concurrency' then
    -- The ranges of concurrency_acquire; cost 1 holds a slot, 0 only asks.
    need('limit', item.limit, 1, 1000000)
    need('period_ms', item.period_ms, 1, 31622400000)
    need('cost', item.cost, 0, 1)
    if item.holder == nil then rl_fail(script, string.format('%s is required for algo concurrency', rl_arg_label('holder', i))) end
    return
  end
  if algo == 'quota' then
    if item.unit == nil then rl_fail(script, string.format('%s is required for algo quota', rl_arg_label('unit', i))) end
    need('offset_ms', item.offset_ms, -50400000, 50400000)
    return
  end
  need('limit', item.limit, 1, 1000000000)
  need('period_ms', item.period_ms, 1, 31622400000)
  need('cost', item.cost, 0, 1000000000)
  if algo == 'gcra' or algo == 'token_bucket' then
    need('burst', item.burst, 1, 1000000000)
    rl_check_refill_bounded(script, item.limit, item.period_ms, item.burst)
  elseif algo == 'fixed_window' then
    need('offset_ms', item.offset_ms, 0, item.period_ms - 1)
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

--- multi_batch: the limits every decision shares, parsed from `algo,limit,period_ms,burst,offset_ms,unit;...`.
local function rl_multi_batch_specs(script, count, specs)
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

--- The specs are valid for every item's cost, and the items are whole decisions.
local function rl_check_multi_batch_specs(script, count, specs, items)
  if #items % count ~= 0 then rl_fail(script, string.format('%d key(s) are not whole decisions of %d limit(s)', #items, count)) end
  local limits = rl_multi_batch_specs(script, count, specs)
  for j = 1, count do
    local cost = 0
    for i = j, #items, count do
      if items[i].cost > cost then cost = items[i].cost end
    end
    limits[j].cost = cost
    rl_multi_check(script, j, limits[j])
  end
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

--- Evaluates one item: allowed, remaining, reset_after_ms, retry_after_ms, writes. `apply_now`:
--- an algorithm that can may make its write at once (batch: nothing to roll back) and return none.
--- item.share_ppm (nil = 1e6) is its priority class: decided at cost + what the class must leave.
local function rl_multi_item(key, item, now, simulated, trim, apply_now)
  local algo = item.algo
  local share = item.share_ppm
  if algo == 'gcra' then
    return rl_gcra_eval(key, item.limit, item.period_ms, item.burst, item.cost, now, simulated, apply_now, rl_keep(item.burst, share))
  elseif algo == 'token_bucket' then
    return rl_token_bucket_eval(key, item.limit, item.period_ms, item.burst, item.cost, now, simulated, rl_keep(item.burst, share))
  elseif algo == 'fixed_window' then
    return rl_fixed_window_eval(key, item.limit, item.period_ms, item.offset_ms, item.cost, now, simulated, rl_keep(item.limit, share))
  elseif algo == 'sliding_window' then
    return rl_sliding_window_eval(key, item.limit, item.period_ms, item.cost, now, simulated, rl_keep(item.limit, share))
  elseif algo == 'sliding_log' then
    return rl_sliding_log_eval(key, item.limit, item.period_ms, item.cost, now, simulated, trim, rl_keep(item.limit, share))
  elseif algo == 'quota' then
    return rl_quota_eval(key, item.limit, item.unit, item.zone or item.offset_ms, item.cost, now, simulated, rl_keep(item.limit, share))
  elseif algo == 'concurrency' then
    return rl_concurrency_eval(key, item.limit, item.period_ms, item.holder, item.cost, now, simulated, trim, rl_keep(item.limit, share))
  end
  local until_ms = rl_block_read(key, now)
  if until_ms then return 0, 0, until_ms - now, until_ms - now, {} end
  return 1, 0, 0, 0, {}
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

--- The reply of multi / multi_peek: allowed, denied_index, retry_after_ms, then per item
--- allowed, remaining, reset_after_ms, retry_after_ms.
local function rl_multi(script, keys, items, now, simulated, commit)
  local seen = {}
  for i = 1, #items do
    if seen[keys[i]] then
      rl_fail(script, string.format('key %s is given twice (items %d and %d)', keys[i], seen[keys[i]], i))
    end
    seen[keys[i]] = i
  end
  local reply = { 1, 0, 0 }
  local pending = {}
  for i = 1, #items do
    local allowed, remaining, reset, retry, writes = rl_multi_item(keys[i], items[i], now, simulated, commit)
    reply[#reply + 1] = allowed
    reply[#reply + 1] = remaining
    reply[#reply + 1] = reset
    reply[#reply + 1] = retry
    if allowed == 1 then
      pending[#pending + 1] = writes
    else
      if reply[1] == 1 then reply[1], reply[2] = 0, i end
      if retry < 0 or reply[3] < 0 then reply[3] = -1 elseif retry > reply[3] then reply[3] = retry end
    end
  end
  if commit and reply[1] == 1 then
    for i = 1, #pending do rl_apply(pending[i]) end
  else
    -- Nothing was taken: report what each admitting limit holds now, not what it would hold.
    for i = 1, #items do
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
