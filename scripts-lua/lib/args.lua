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

--- Codes of a decision that failed alone in a batch (its reply marker): its key holds another
--- Redis type, or foreign state; or (node_batch on a Redis Cluster) this node does not serve
--- its key: the slot moved, or is moving and the key is not here, so Redis refused to reach it
--- and nothing of the decision was written. Any other error is raised again as it came, failing
--- the call.
local RL_KEY_WRONGTYPE = 1
local RL_KEY_WRONGSTATE = 2
local RL_KEY_ELSEWHERE = 3

--- The marker code of an error caught by pcall. Redis 7 hands pcall an error table's message as
--- a string; both forms are read.
local function rl_key_error(e)
  local message = e
  if type(e) == 'table' then message = e.err end
  if type(message) == 'string' then
    if string.sub(message, 1, 10) == 'WRONGTYPE ' then return RL_KEY_WRONGTYPE end
    if string.sub(message, 1, 11) == 'WRONGSTATE ' then return RL_KEY_WRONGSTATE end
    -- "Script attempted to access a non local key in a cluster node" (Redis 7.0+, Valkey: a slot
    -- another node serves or is taking over), "... a slot not served" (Redis 7.4+, Valkey 8: an
    -- unassigned slot).
    if string.find(message, 'non local key', 1, true) or string.find(message, 'slot not served', 1, true) then return RL_KEY_ELSEWHERE end
    -- Raised again as a table, so the reply keeps its code word (a string would become ERR).
    if string.find(message, '^%u+ ') then error({ err = message }) end
  end
  error(e)
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

--- For scripts over a list without a key per item: fixed keys, fixed args, then one group per
--- item (its keys among its arguments). The number of items.
local function rl_arity_groups(script, keys, argv, nkeys, nargs, group_size)
  if #keys ~= nkeys then
    rl_fail(script, string.format('expects %d key(s), got %d', nkeys, #keys))
  end
  local extra = #argv - nargs
  if extra < group_size or extra % group_size ~= 0 then
    rl_fail(script, string.format('expects %d fixed argument(s) then one or more groups of %d, got %d argument(s)', nargs, group_size, #argv))
  end
  return extra / group_size
end

local function rl_arity(script, keys, argv, nkeys, max_args)
  if #keys ~= nkeys then
    rl_fail(script, string.format('expects %d key(s), got %d', nkeys, #keys))
  end
  if #argv > max_args then
    rl_fail(script, string.format('expects at most %d argument(s), got %d', max_args, #argv))
  end
end
