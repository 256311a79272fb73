import { InvalidArgumentError } from '../errors.js';
import { parseTzRules, TZ_MAX_ENTRIES, type TzRules } from '../twin/calendar.js';

/**
 * A calendar quota in an IANA time zone runs on the Redis server clock, which knows no zones:
 * the client sends the zone's UTC offsets and the instants they change for a window around now
 * (`tz_rules`, "off0;t1:off1;t2:off2;..." in ms), and the script picks the offset in effect at
 * the server's now and at each period boundary. Built with Intl (the runtime's tz database).
 */
export interface TzRulesWindow {
  /** The rule string the quota scripts take. */
  readonly rules: string;
  /** The window it covers exactly: [fromMs, toMs). Outside it the nearest offset holds. */
  readonly fromMs: number;
  readonly toMs: number;
  /** When the client should build it again (well before toMs, so no period near the end is cut). */
  readonly refreshAtMs: number;
}

const DAY_MS = 86_400_000;
/** Covered before now: a server clock behind the client's, and periods that began a month ago. */
export const TZ_WINDOW_BEFORE_MS = 40 * DAY_MS;
/** Covered after now: a year and a month, so the current and next month are always inside. */
export const TZ_WINDOW_AFTER_MS = 400 * DAY_MS;
/** Rebuilt this long after it was built: 300 days, leaving 100 days (three months) ahead. */
export const TZ_REFRESH_AFTER_MS = 300 * DAY_MS;
/** Sampling step while looking for transitions: no zone changes its offset twice in 6 hours. */
const STEP_MS = 6 * 3_600_000;

const formats = new Map<string, Intl.DateTimeFormat>();

function format(timeZone: string): Intl.DateTimeFormat {
  let f = formats.get(timeZone);
  if (!f) {
    try {
      f = new Intl.DateTimeFormat('en-US', {
        timeZone,
        hourCycle: 'h23',
        era: 'short',
        year: 'numeric',
        month: 'numeric',
        day: 'numeric',
        hour: 'numeric',
        minute: 'numeric',
        second: 'numeric',
      });
    } catch (cause) {
      throw new InvalidArgumentError('quota', 'timeZone', `timeZone must be an IANA time zone name (e.g. "Europe/Berlin"), got "${String(timeZone).slice(0, 60)}"`, { cause });
    }
    formats.set(timeZone, f);
  }
  return f;
}

/** The UTC offset of `timeZone` at instant t (whole seconds, as the tz database has them), ms. */
export function zoneOffsetMs(timeZone: string, t: number): number {
  const s = Math.floor(t / 1000) * 1000;
  const p: Record<string, string> = {};
  for (const part of format(timeZone).formatToParts(s)) p[part.type] = part.value;
  let year = Number(p.year);
  if (p.era === 'BC' || p.era === 'B') year = 1 - year;
  const local = Date.UTC(year, Number(p.month) - 1, Number(p.day), Number(p.hour), Number(p.minute), Number(p.second));
  return local - s;
}

/** The first whole second in (lo, hi] whose offset differs from lo's (one is known to exist). */
function transitionIn(timeZone: string, lo: number, hi: number): number {
  const before = zoneOffsetMs(timeZone, lo);
  let a = lo / 1000;
  let b = hi / 1000;
  while (b - a > 1) {
    const m = Math.floor((a + b) / 2);
    if (zoneOffsetMs(timeZone, m * 1000) === before) a = m;
    else b = m;
  }
  return b * 1000;
}

/**
 * The rules of `timeZone` for [nowMs - 40 days, nowMs + 400 days). Throws InvalidArgumentError
 * for a name Intl does not know. A zone with more transitions than a rule string may hold
 * (64 entries) in that window is refused too (none in the tz database comes close).
 */
export function tzRulesFor(timeZone: string, nowMs: number = Date.now()): TzRulesWindow {
  const fromMs = Math.floor((nowMs - TZ_WINDOW_BEFORE_MS) / 1000) * 1000;
  const toMs = fromMs + TZ_WINDOW_BEFORE_MS + TZ_WINDOW_AFTER_MS;
  const entries = [String(zoneOffsetMs(timeZone, fromMs))];
  let at = fromMs;
  let offset = zoneOffsetMs(timeZone, at);
  while (at < toMs) {
    const next = Math.min(at + STEP_MS, toMs);
    const o = zoneOffsetMs(timeZone, next);
    if (o !== offset) {
      const t = transitionIn(timeZone, at, next);
      const after = zoneOffsetMs(timeZone, t);
      entries.push(`${t}:${after}`);
      offset = after;
      at = t;
      continue;
    }
    at = next;
  }
  if (entries.length > TZ_MAX_ENTRIES) throw new InvalidArgumentError('quota', 'timeZone', `time zone ${timeZone} changes its offset ${entries.length - 1} times in 440 days; at most ${TZ_MAX_ENTRIES - 1} fit`);
  return { rules: entries.join(';'), fromMs, toMs, refreshAtMs: fromMs + TZ_WINDOW_BEFORE_MS + TZ_REFRESH_AFTER_MS };
}

/** Checks a rule string as the scripts do (tz_rules): a malformed one is an InvalidArgumentError. */
export function checkTzRules(rules: string, script = 'quota'): TzRules {
  return parseTzRules(rules, (detail) => {
    throw new InvalidArgumentError(script, 'tz_rules', detail);
  });
}

/** How far back the clock may move before the rules are built again (the window covers 40 days back). */
const TZ_STALE_BEFORE_MS = 30 * DAY_MS;

/**
 * A quota limit's time zone as a limiter sends it: the rule string for the window around the
 * limiter's clock, built again when the clock passes refreshAtMs (or moves back before the
 * window). One comparison per call; no timer.
 */
export class ZoneRules {
  private w: TzRulesWindow;

  constructor(
    readonly timeZone: string,
    private readonly clock: () => number,
  ) {
    this.w = tzRulesFor(timeZone, clock());
  }

  /** The rule string for now (rebuilt when the clock has left the window it was built for). */
  rules(): string {
    const now = this.clock();
    if (now >= this.w.refreshAtMs || now < this.w.fromMs + TZ_STALE_BEFORE_MS) this.w = tzRulesFor(this.timeZone, now);
    return this.w.rules;
  }

  /** The window the current rules cover (for tests and stats). */
  window(): TzRulesWindow {
    return this.w;
  }
}
