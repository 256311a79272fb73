--- Exact integer arithmetic on Lua 5.1 doubles. Every value a script keeps stays an integer
--- below 2^53; a product that could pass that is split into 12-bit chunks, so rates such as
--- 1e9 units per 31 days keep every unit. The TypeScript twin (src/twin/exact.ts) is this
--- file line for line.
--- @include "lib/args"

local RL_TWO53 = 9007199254740992

--- q, r with p = q*c + r and 0 <= r < c (floor division), for integers c >= 1, |p| + c <= 2^53.
local function rl_divmod(p, c)
  local r = rl_fmod(p, c)
  if r < 0 then r = r + c end
  return (p - r) / c, r
end

--- q, r with a*b = q*c + r and 0 <= r < c, for integers 0 <= a < 2^40, 0 <= b < 2^48,
--- 1 <= c < 2^40. q is exact while it is below 2^53.
local function rl_muldivmod(a, b, c)
  local p = (a + 0.0) * b -- a float product: Lua 5.4 integers would wrap past 2^63
  if p < RL_TWO53 then
    local r = rl_fmod(p, c) -- p >= 0: no sign fix-up needed
    return (p - r) / c, r
  end
  local q, r = 0, 0
  local scale = 68719476736 -- 2^36: b's most significant 12-bit chunk
  while scale >= 1 do
    local chunk = rl_floor(b / scale)
    b = b - chunk * scale
    local s = r * 4096 + a * chunk
    local rr = rl_fmod(s, c)
    q = q * 4096 + (s - rr) / c
    r = rr
    scale = scale / 4096
  end
  return q, r
end
