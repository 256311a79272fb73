--- The clock: Redis server time unless the caller passes now_ms (tests, simulation, replays).
--- Server time means a fleet with skewed clocks still agrees on every decision.

local function rl_now_ms(override)
  if override then return override end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
