--- Argument checks shared by every script. They read no globals (KEYS and ARGV come in as
--- arguments) so the same code runs as an EVAL script and inside the Redis Functions library.
--- Codegen writes each script's prologue from its
--- header as calls to these, so a bad argument is refused before any key is read or written.
--- Integers must be plain decimal strings: "1e3", "0x10", "1.0", "inf" and "nan" are refused
--- rather than guessed at (Lua's tonumber would take all of them).

local function rl_fail(script, message)
  error({ err = 'ERR redlimit ' .. script .. ': ' .. message })
end

local function rl_arg_int(script, raw, index, name, required, min, max)
  if raw == nil or raw == '' then
    if required then
      rl_fail(script, name .. ' (ARGV[' .. index .. ']) is required')
    end
    return nil
  end
  if #raw > 17 or not string.find(raw, '^%-?%d+$') then
    rl_fail(script, name .. ' (ARGV[' .. index .. ']) must be a decimal integer, got "' .. string.sub(raw, 1, 40) .. '"')
  end
  local n = tonumber(raw)
  if n < min or n > max then
    rl_fail(script, string.format('%s (ARGV[%d]) must be between %d and %d, got %s', name, index, min, max, raw))
  end
  return n
end

local function rl_arg_string(script, raw, index, name, required, max_len)
  if raw == nil or raw == '' then
    if required then
      rl_fail(script, name .. ' (ARGV[' .. index .. ']) is required')
    end
    return nil
  end
  if #raw > max_len then
    rl_fail(script, string.format('%s (ARGV[%d]) must be at most %d bytes, got %d', name, index, max_len, #raw))
  end
  return raw
end

local function rl_arity(script, keys, argv, nkeys, max_args)
  if #keys ~= nkeys then
    rl_fail(script, string.format('expects %d key(s), got %d', nkeys, #keys))
  end
  if #argv > max_args then
    rl_fail(script, string.format('expects at most %d argument(s), got %d', max_args, #argv))
  end
end
