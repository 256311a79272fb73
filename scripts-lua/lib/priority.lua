--- Priority classes as reserved capacity. A call of share s (parts per million of the capacity it
--- may use) is admitted only if, after it, at least keep = capacity - floor(capacity * s / 1e6)
--- units would still be left: the algorithms decide at cost + keep and take cost. Share 1e6
--- (the default) keeps nothing back, so a call without a class decides exactly as before.
--- Capacity: burst for gcra and token_bucket, the limit for every other algorithm.
--- @include "lib/exact"

--- Units a call of `share_ppm` must leave (0 for nil or 1e6), exact for capacities up to 1e15.
--- Inline while capacity * s is exact (below 2^53: every capacity but a quota's above 9e9);
--- past that, capacity = q * 1e6 + r, so floor(capacity * s / 1e6) = q * s + floor(r * s / 1e6).
local function rl_keep(capacity, share_ppm)
  if share_ppm == nil or share_ppm >= 1000000 then return 0 end
  local p = (capacity + 0.0) * share_ppm -- a float product: Lua 5.4 integers would wrap
  if p < RL_TWO53 then return capacity - (p - math.fmod(p, 1000000)) / 1000000 end
  local q, r = rl_divmod(capacity, 1000000)
  return capacity - q * share_ppm - rl_muldivmod(r, share_ppm, 1000000)
end
