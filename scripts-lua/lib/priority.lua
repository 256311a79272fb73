--- Priority classes as reserved capacity. A call of share s (parts per million of the capacity it
--- may use) is admitted only if, after it, at least keep = capacity - floor(capacity * s / 1e6)
--- units would still be left: the algorithms decide at cost + keep and take cost. Share 1e6
--- (the default) keeps nothing back, so a call without a class decides exactly as before.
--- Capacity: burst for gcra and token_bucket, the limit for every other algorithm.
--- @include "lib/args"

--- Units a call of `share_ppm` must leave (0 for nil or 1e6). Exact for capacities up to 1e15
--- with no product above 2^53: capacity = q * 1e6 + r, so floor(capacity * s / 1e6) =
--- q * s + floor(r * s / 1e6), with q * s <= 1e15 and r * s < 1e12. Self-contained on purpose:
--- every script that takes a class defines it per call, and lib/exact's helpers would come too.
local function rl_keep(capacity, share_ppm)
  if share_ppm == nil or share_ppm >= 1000000 then return 0 end
  local r = rl_fmod(capacity, 1000000)
  local rs = r * share_ppm
  return capacity - (capacity - r) / 1000000 * share_ppm - (rs - rl_fmod(rs, 1000000)) / 1000000
end
