--- @include "lib/args"
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
