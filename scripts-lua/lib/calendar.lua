--- Calendar periods in a UTC offset or a time zone's rules: days, ISO weeks (from Monday) and
--- months. Civil-date conversions after Howard Hinnant's days_from_civil / civil_from_days.
--- A zone is either a fixed offset in ms (a number) or the rules of rl_tz_rules (a table).
--- @include "lib/args"

local RL_DAY_MS = 86400000

local function rl_days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

local function rl_civil_from_days(z)
  z = z + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local m = mp + 3
  if mp >= 10 then m = mp - 9 end
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return y, m
end

--- Most entries a rule string may hold: a window of 440 days has 4 transitions in every zone
--- that has any; the rest is headroom for zones that change their rules.
local RL_TZ_MAX_ENTRIES = 64
local RL_TZ_MAX_OFFSET_MS = 50400000

--- Parses a time zone's rules, "off0;t1:off1;t2:off2;..." in ms: off0 is the UTC offset before
--- t1, off_i the one from t_i on (t strictly increasing). The client builds it from an IANA zone
--- for a window around now (src/client/time-zone.ts); outside that window the nearest offset
--- holds. Returns { offsets = {off0, off1, ...}, times = {t1, ...} }; a malformed string is
--- refused with BADARG.
local function rl_tz_rules(script, raw)
  local offsets, times = {}, {}
  local bad = function(why)
    rl_fail(script, 'tz_rules ' .. why .. ', got "' .. string.sub(raw, 1, 40) .. '"')
  end
  local n = 0
  for entry in string.gmatch(raw .. ';', '([^;]*);') do
    n = n + 1
    if n > RL_TZ_MAX_ENTRIES then bad('has more than ' .. RL_TZ_MAX_ENTRIES .. ' entries') end
    local t, off
    if n == 1 then
      off = entry
    else
      t, off = string.match(entry, '^(%d+):(.*)$')
      if t == nil or #t > 15 then bad('entry ' .. n .. ' must be <ms since epoch>:<offset ms>') end
      t = tonumber(t)
      if n > 2 and t <= times[n - 2] then bad('transition times must increase') end
      times[n - 1] = t
    end
    if #off > 9 or not string.find(off, '^%-?%d+$') then bad('entry ' .. n .. ' needs an integer offset in ms') end
    off = tonumber(off)
    if off < -RL_TZ_MAX_OFFSET_MS or off > RL_TZ_MAX_OFFSET_MS then bad('offsets must be between -50400000 and 50400000') end
    offsets[n] = off
  end
  return { offsets = offsets, times = times }
end

--- The UTC offset in effect at instant t.
local function rl_tz_offset(rules, t)
  local times, i = rules.times, 1
  while i <= #times and t >= times[i] do i = i + 1 end
  return rules.offsets[i]
end

--- The first instant whose local time is at or after the local instant `l` (ms since the local
--- epoch): local midnight where it exists; in a gap (clocks jump over it) the transition; in an
--- overlap (it occurs twice) the first. Each span between transitions is tried on its own.
local function rl_tz_first_at(rules, l)
  local times, offsets = rules.times, rules.offsets
  local best
  for i = 1, #offsets do
    local u = l - offsets[i]
    if i > 1 and u < times[i - 1] then u = times[i - 1] end
    if (i > #times or u < times[i]) and (best == nil or u < best) then best = u end
  end
  return best
end

--- First and after-last local day numbers of the day / week / month containing local day `days`.
local function rl_calendar_days(days, unit)
  if unit == 'day' then return days, days + 1 end
  if unit == 'week' then
    local first = days - (days + 3) % 7 -- 1970-01-01 was a Thursday; weeks start on Monday
    return first, first + 7
  end
  local y, m = rl_civil_from_days(days)
  if m == 12 then return rl_days_from_civil(y, m, 1), rl_days_from_civil(y + 1, 1, 1) end
  return rl_days_from_civil(y, m, 1), rl_days_from_civil(y, m + 1, 1)
end

--- [start, end) in UTC ms of the day / week / month containing `now` in `zone`. A fixed offset
--- shifts every boundary alike. With rules, each boundary is local midnight at the offset in
--- effect then, so a day across a transition lasts 23 or 25 hours (a week 167 or 169, a month
--- one hour less or more). Where clocks fall back over midnight, a local date recurs: its second
--- stretch belongs to the period that had already begun.
local function rl_calendar_period(now, unit, zone)
  if type(zone) ~= 'table' then
    local first, after = rl_calendar_days(math.floor((now + zone) / RL_DAY_MS), unit)
    return first * RL_DAY_MS - zone, after * RL_DAY_MS - zone
  end
  local first, after = rl_calendar_days(math.floor((now + rl_tz_offset(zone, now)) / RL_DAY_MS), unit)
  local start, period_end = rl_tz_first_at(zone, first * RL_DAY_MS), rl_tz_first_at(zone, after * RL_DAY_MS)
  for _ = 1, 2 do
    if now < period_end then break end
    first, after = rl_calendar_days(after, unit)
    start, period_end = rl_tz_first_at(zone, first * RL_DAY_MS), rl_tz_first_at(zone, after * RL_DAY_MS)
  end
  return start, period_end
end
