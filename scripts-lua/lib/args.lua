--- Argument checks shared by every script. They read no globals (KEYS and ARGV come in as
--- arguments) so the same code runs as an EVAL script and inside the Redis Functions library.
--- Codegen writes each script's prologue from its
--- header as calls to these, so a bad argument is refused before any key is read or written.
--- Integers must be plain decimal strings: "1e3", "0x10", "1.0", "inf" and "nan" are refused
--- rather than guessed at (Lua's tonumber would take all of them).

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

local function rl_fail(script, message)
  error({ err = 'ERR redlimit ' .. script .. ': ' .. message })
end

--- An argument's name in messages: `cost`, or `cost[3]` for the third item of a list. Built only
--- when a message is, so a valid call formats no numbers.
local function rl_arg_label(name, item)
  if item then return name .. '[' .. item .. ']' end
  return name
end

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

local function rl_arity(script, keys, argv, nkeys, max_args)
  if #keys ~= nkeys then
    rl_fail(script, string.format('expects %d key(s), got %d', nkeys, #keys))
  end
  if #argv > max_args then
    rl_fail(script, string.format('expects at most %d argument(s), got %d', max_args, #argv))
  end
end
