--- Calendar periods in a fixed UTC offset: days, ISO weeks (from Monday) and months.
--- Civil-date conversions after Howard Hinnant's days_from_civil / civil_from_days.

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

--- [start, end) in UTC ms of the day / week / month containing `now`, in local time utc + offset.
local function rl_calendar_period(now, unit, utc_offset_ms)
  local local_ms = now + utc_offset_ms
  local days = math.floor(local_ms / RL_DAY_MS)
  local first, after
  if unit == 'day' then
    first, after = days, days + 1
  elseif unit == 'week' then
    first = days - (days + 3) % 7 -- 1970-01-01 was a Thursday; weeks start on Monday
    after = first + 7
  else
    local y, m = rl_civil_from_days(days)
    first = rl_days_from_civil(y, m, 1)
    if m == 12 then after = rl_days_from_civil(y + 1, 1, 1) else after = rl_days_from_civil(y, m + 1, 1) end
  end
  return first * RL_DAY_MS - utc_offset_ms, after * RL_DAY_MS - utc_offset_ms
end
