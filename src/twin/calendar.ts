/**
 * Twin of scripts-lua/lib/calendar.lua: calendar periods in a zone, a fixed UTC offset in ms or a
 * time zone's rules (parseTzRules), the same arithmetic step for step.
 */
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

/** A time zone's rules for a window: offsets[0] before times[0], offsets[i] from times[i - 1] on. */
export interface TzRules {
  readonly offsets: readonly number[];
  readonly times: readonly number[];
}

/** A fixed UTC offset in ms, or a time zone's rules. */
export type Zone = number | TzRules;

export const TZ_MAX_ENTRIES = 64;
const TZ_MAX_OFFSET_MS = 50_400_000;

/**
 * Parses "off0;t1:off1;t2:off2;..." (ms) exactly as rl_tz_rules does; `fail` gets the message
 * the script would give after `redlimit <script>: ` (and must throw).
 */
export function parseTzRules(raw: string, fail: (message: string) => never): TzRules {
  const bad = (why: string): never => fail(`tz_rules ${why}, got "${raw.slice(0, 40)}"`);
  const offsets: number[] = [];
  const times: number[] = [];
  const entries = raw.split(';');
  for (let n = 1; n <= entries.length; n++) {
    if (n > TZ_MAX_ENTRIES) bad(`has more than ${TZ_MAX_ENTRIES} entries`);
    const entry = entries[n - 1]!;
    let off = entry;
    if (n > 1) {
      const m = /^(\d+):(.*)$/s.exec(entry);
      if (!m || m[1]!.length > 15) bad(`entry ${n} must be <ms since epoch>:<offset ms>`);
      const t = Number(m![1]);
      if (n > 2 && t <= times[n - 3]!) bad('transition times must increase');
      times.push(t);
      off = m![2]!;
    }
    if (off.length > 9 || !/^-?\d+$/.test(off)) bad(`entry ${n} needs an integer offset in ms`);
    const o = Number(off);
    if (o < -TZ_MAX_OFFSET_MS || o > TZ_MAX_OFFSET_MS) bad('offsets must be between -50400000 and 50400000');
    offsets.push(o);
  }
  return { offsets, times };
}

/** The UTC offset in effect at instant t. */
export function tzOffset(rules: TzRules, t: number): number {
  let i = 0;
  while (i < rules.times.length && t >= rules.times[i]!) i++;
  return rules.offsets[i]!;
}

/** The first instant whose local time is at or after the local instant `l` (see rl_tz_first_at). */
function tzFirstAt(rules: TzRules, l: number): number {
  const { offsets, times } = rules;
  let best = Infinity;
  for (let i = 0; i < offsets.length; i++) {
    let u = l - offsets[i]!;
    if (i > 0 && u < times[i - 1]!) u = times[i - 1]!;
    if ((i >= times.length || u < times[i]!) && u < best) best = u;
  }
  return best;
}

/** First and after-last local day numbers of the day / week / month containing local day `days`. */
function calendarDays(days: number, unit: string): [number, number] {
  if (unit === 'day') return [days, days + 1];
  if (unit === 'week') {
    const first = days - ((((days + 3) % 7) + 7) % 7); // Lua's % is a floor modulo; JS's is not
    return [first, first + 7];
  }
  const [y, m] = civilFromDays(days);
  return [daysFromCivil(y, m, 1), m === 12 ? daysFromCivil(y + 1, 1, 1) : daysFromCivil(y, m + 1, 1)];
}

/** [start, end) in UTC ms of the day / week / month containing `now` in `zone` (see rl_calendar_period). */
export function calendarPeriod(now: number, unit: string, zone: Zone): [number, number] {
  if (typeof zone === 'number') {
    const [first, after] = calendarDays(Math.floor((now + zone) / DAY_MS), unit);
    return [first * DAY_MS - zone, after * DAY_MS - zone];
  }
  let [first, after] = calendarDays(Math.floor((now + tzOffset(zone, now)) / DAY_MS), unit);
  let start = tzFirstAt(zone, first * DAY_MS);
  let end = tzFirstAt(zone, after * DAY_MS);
  for (let i = 0; i < 2 && now >= end; i++) {
    [first, after] = calendarDays(after, unit);
    start = tzFirstAt(zone, first * DAY_MS);
    end = tzFirstAt(zone, after * DAY_MS);
  }
  return [start, end];
}
