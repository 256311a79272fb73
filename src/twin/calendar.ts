/** Twin of scripts-lua/lib/calendar.lua: calendar periods in a fixed UTC offset. */
const DAY_MS = 86_400_000;

function daysFromCivil(y: number, m: number, d: number): number {
  if (m <= 2) y -= 1;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const mp = (m + 9) % 12;
  const doy = Math.floor((153 * mp + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

function civilFromDays(z: number): [number, number] {
  z += 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const m = mp >= 10 ? mp - 9 : mp + 3;
  const y = yoe + era * 400;
  return [m <= 2 ? y + 1 : y, m];
}

/** [start, end) in UTC ms of the day / week / month containing `now`, local time = utc + offset. */
export function calendarPeriod(now: number, unit: string, utcOffsetMs: number): [number, number] {
  const days = Math.floor((now + utcOffsetMs) / DAY_MS);
  let first: number;
  let after: number;
  if (unit === 'day') {
    first = days;
    after = days + 1;
  } else if (unit === 'week') {
    first = days - ((((days + 3) % 7) + 7) % 7); // Lua's % is a floor modulo; JS's is not
    after = first + 7;
  } else {
    const [y, m] = civilFromDays(days);
    first = daysFromCivil(y, m, 1);
    after = m === 12 ? daysFromCivil(y + 1, 1, 1) : daysFromCivil(y, m + 1, 1);
  }
  return [first * DAY_MS - utcOffsetMs, after * DAY_MS - utcOffsetMs];
}
