--- @script tiers_refund
--- @version 2
--- @summary Gives units back to the limits of subjects' keys as tiers holds them (one key per subject, lib/tiers): each limit gets its cost back, never above full, as its single-limit refund script would give it. What a caller runs when work it was admitted for did not happen, or cost less.
--- @key state+ repeats One key per refund: a subject's key holding every limit of `specs`.
--- @arg count int required 1..16 How many limits each key holds (the number of specs).
--- @arg specs string required maxlen=2048 The limits, as tiers takes them.
--- @arg now_ms int optional 0..140737488355328 Clock override in ms; Redis TIME when omitted (pass '' to omit).
--- @arg tz_rules string optional maxlen=16384 Time zones of quota specs, as tiers takes them.
--- @arg adopt string optional maxlen=1040 The upgrade from a key per limit, as tiers takes it. Empty: no adoption.
--- @each refunds per=count
--- @group costs string required maxlen=512 Units to give back to each limit: `count` comma-separated integers in specs order (0: that limit is left as it is).
--- @check tiers_specs count specs refunds
--- Publishes each key it gave units back to on the channel redlimit:refund, as the refund scripts
--- do: other instances drop the denials they cached for it (one may pass now) and what their
--- fallback learned of it. pcall: a client whose ACL forbids PUBLISH still refunds.
--- @return now_ms int The clock reading (ms) the refunds used.
--- @return_each remaining int Per limit of each key, in order (count results per key): whole units it holds after the refund.
--- @return_each reset_after_ms int ms until it is back to full.
--- @include "lib/tiers"
--- @include "lib/clock"
--- @args

local now = rl_now_ms(now_ms)
local limits = rl_tiers_plan('tiers_refund', count, specs, tz_rules).limits
local adopting = rl_tiers_adopt('tiers_refund', adopt, count)
local function refund_all()
  local reply = { now }
  for d = 1, #KEYS do
    local part, changed = rl_tiers_refund('tiers_refund', KEYS[d], limits, refunds[d].cost_list, now, now_ms ~= nil, adopting)
    for i = 1, #part do reply[#reply + 1] = part[i] end
    if changed then redis.pcall('PUBLISH', 'redlimit:refund', KEYS[d]) end
  end
  return reply
end
return rl_reply(rl_tiers_run(refund_all))
