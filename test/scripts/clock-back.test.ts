import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import * as b from '../../generated/index.js';
import { MemoryStore, TwinClient } from '../../src/index.js';
import { runScript } from '../../src/runtime/index.js';
import { decodeState, toTwinValue, type AlgoName } from '../../src/twin/state.js';
import { ALGO_KIND, type TwinValue } from '../../src/twin/store.js';
import { TIERS_KIND, tiersValueString, type TiersValue } from '../../src/twin/tiers.js';
import { windowStart } from '../../src/twin/windows.js';
import { functionsServerForFile } from '../support/redis.js';
import { CET, DAY, T0, specsOf, tzOf, type Limit } from '../support/tiers.js';

/**
 * A caller's clock (now_ms) that steps BACK by hours or days, so that a key holds a state written
 * at a later time than now: a window, period or bucket time from the "future".
 *
 * The rule both sides apply (scripts-lua/lib/counter.lua, algo_sliding_window.lua, algo_gcra.lua,
 * algo_token_bucket.lua; src/twin/windows.ts, gcra.ts, token-bucket.ts), alone or as a field of
 * a subject's key (lib/tiers, src/twin/tiers.ts):
 *   - fixed_window, quota: the stored count is read only if its window (period) start is now's;
 *     a later (or earlier) one reads as 0, and an admitted call writes now's window over it.
 *   - sliding_window: (cur, prev) if the stored start is now's window, (0, cur) if it is the one
 *     before, else (0, 0): a later window reads as empty and is written over.
 *   - gcra: a later tat is debt: denied until now reaches tat - burst span (nothing refills).
 *   - token_bucket: a later ts_ms refills nothing, and ts_ms is kept (never moved back).
 * The scripts agree with the twin reply for reply and state for state there.
 *
 * What disagreed (the tiers plan test in tiers.test.ts, FCALL/EVALSHA vs twin) is the test's model
 * of expiry, not a script: Redis expires a key by real time (PX ttl + 60 s grace), the twin's
 * store by the caller's clock, so the test deletes a Redis key when the twin no longer holds it at
 * `now`. But the store's liveness is `now <= expiresAt` at each `now`: an entry no call read while
 * the clock was past its expiry (another key was decided then) is live again when the clock steps
 * back before that expiry, while its Redis key was deleted and stays gone (the twin holds more:
 * the finding's "remaining 1 vs 2"). And TwinClient({ clock }) gives its store no clock: the
 * store's idle sweep (a timer, run while the test awaits Redis) judges expiry at the latest `now`
 * any call passed, so after a step back it drops keys still live at the callers' `now`, whose
 * Redis keys stay (the twin holds less: "a fresh week quota vs 6 left"). With the store on the
 * callers' clock (twinOn) and a key found gone dropped from the twin as well (dropGone), the twin
 * ≡ the Lua wherever the clock goes, as the properties below check; the last two tests show each
 * effect alone.
 */
const lib = functionsServerForFile();

let run = 0;

const HOUR = 3_600_000;
const DST = Date.UTC(2026, 2, 29, 1);

/** Instants at and beside edges (minutes with a 20 s offset, hours, UTC and CET days, ISO weeks, DST), and anything in 10 days. */
const EDGES = [T0, T0 + 20_000, T0 + HOUR, Date.UTC(2026, 2, 20, 23), Date.UTC(2026, 2, 21), Date.UTC(2026, 2, 22, 23), Date.UTC(2026, 2, 23), Date.UTC(2026, 2, 23, 1), DST, Date.UTC(2026, 2, 29, 22), Date.UTC(2026, 2, 30)];
const instant = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...EDGES).chain((e) => fc.integer({ min: -2, max: 1 }).map((d) => e + d)) },
  { weight: 2, arbitrary: fc.integer({ min: T0 - DAY, max: T0 + 10 * DAY }) },
);

/** Long enough for the store's idle sweep to take a turn (it looks again within 1 s). */
const idleTurn = () => new Promise((r) => setTimeout(r, 1200));

/**
 * A twin whose store's idle sweep keeps the callers' clock. TwinClient({ clock }) gives the
 * store none: its idle sweep then runs at the latest `now` any call passed (plus real time since),
 * so after a step back it drops keys that are still live at the callers' `now` (while their Redis
 * keys stay): a twin fresher than the Lua.
 */
const twinOn = (clock: () => number) => new TwinClient({ clock, store: new MemoryStore({ clock }) });

/**
 * Before a step at `now`: a key the twin no longer holds (expired on the callers' clock) goes in
 * Redis AND in the twin, for good. Without the twin's delete, a step back revives it in the twin
 * only (see the tests at the end).
 */
async function dropGone(twin: TwinClient, now: number, pairs: readonly (readonly [string, readonly string[]])[]): Promise<void> {
  for (const [tk, rks] of pairs) {
    if (!twin.store.has(tk, now)) {
      twin.store.delete(tk);
      if (rks.length > 0) await lib.sha.del(...rks);
    }
  }
}

// --- single-limit scripts on their own keys --------------------------------------------------------

type Single = 'fixed_window' | 'quota_week' | 'quota_day_cet' | 'sliding_window' | 'gcra' | 'token_bucket';
const SINGLES: Single[] = ['fixed_window', 'quota_week', 'quota_day_cet', 'sliding_window', 'gcra', 'token_bucket'];
const ALGO_OF: Record<Single, AlgoName> = { fixed_window: 'fixed_window', quota_week: 'quota', quota_day_cet: 'quota', sliding_window: 'sliding_window', gcra: 'gcra', token_bucket: 'token_bucket' };

type Client = Parameters<typeof b.fixedWindow>[0];

/** One decision of `which` through its generated binding: [allowed, remaining, reset, retry]. */
async function decideSingle(client: Client, which: Single, key: string, cost: number, nowMs: number): Promise<number[]> {
  let r: { allowed: boolean; remaining: number; resetAfterMs: number; retryAfterMs: number };
  switch (which) {
    case 'fixed_window':
      r = await b.fixedWindow(client, { key, limit: 3, periodMs: 60_000, offsetMs: 20_000, cost, nowMs });
      break;
    case 'quota_week':
      r = await b.quota(client, { key, limit: 9, unit: 'week', utcOffsetMs: HOUR, cost, nowMs });
      break;
    case 'quota_day_cet':
      r = await b.quota(client, { key, limit: 5, unit: 'day', cost, nowMs, tzRules: CET });
      break;
    case 'sliding_window':
      r = await b.slidingWindow(client, { key, limit: 4, periodMs: HOUR, cost, nowMs });
      break;
    case 'gcra':
      r = await b.gcra(client, { key, limit: 2, periodMs: 60_000, burst: 3, cost, nowMs });
      break;
    default:
      r = await b.tokenBucket(client, { key, limit: 2, periodMs: 60_000, burst: 3, cost, nowMs });
  }
  return [r.allowed ? 1 : 0, r.remaining, r.resetAfterMs, r.retryAfterMs];
}

/** The window a fixed or sliding window reads at `now` (what toTwinValue needs of a state). */
function windowFor(which: Single, now: number): { start: number; periodMs: number } | undefined {
  if (which === 'fixed_window') return { start: windowStart(now, 60_000, 20_000), periodMs: 60_000 };
  if (which === 'sliding_window') return { start: windowStart(now, HOUR, 0), periodMs: HOUR };
  return undefined;
}

describe('a caller clock that steps back: states from a later window, period or time', () => {
  it('fixed_window, quota (week at UTC+1, day in CET rules), sliding_window, gcra, token_bucket, each on its own key: EVALSHA ≡ twin (replies and states), the clock back and forth by minutes to days', async () => {
    const step = fc.record({ now: instant, cost: fc.integer({ min: 0, max: 3 }) });
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...SINGLES), fc.array(step, { minLength: 2, maxLength: 20 }), async (which, steps) => {
        const key = `rl:{cb${run++}}:${which}`;
        let now = T0;
        const twin = twinOn(() => now);
        const algo = ALGO_OF[which];
        for (const st of steps) {
          now = st.now;
          await dropGone(twin, now, [[key, [key]]]);
          const lua = await decideSingle(lib.sha, which, key, st.cost, now);
          const mine = await decideSingle(twin, which, key, st.cost, now);
          expect(mine).toEqual(lua);
          // The state each side holds after the step.
          const raw = await lib.sha.get(key);
          const held = twin.store.get(key, ALGO_KIND[algo as keyof typeof ALGO_KIND] as TwinValue['kind'], now);
          expect(held === undefined).toBe(raw === null);
          if (raw !== null) expect(held).toEqual(toTwinValue(decodeState(algo, raw, now)!, windowFor(which, now)));
        }
      }),
      { numRuns: 240 },
    );
  });

  it('a state from a later window or period, step by step: read as nothing by fixed_window, quota and sliding_window, as debt by gcra, as no refill by token_bucket (EVALSHA ≡ twin)', async () => {
    // Written at T0 + 3 days, decided at T0 (same weekday, hour and minute 3 days earlier).
    const later = T0 + 3 * DAY;
    const expected: Record<Single, number[][]> = {
      // later: 1 taken (2 left); back at T0: the later window reads 0 (2 left after this one).
      fixed_window: [
        [1, 2, 20_000, 0],
        [1, 2, 20_000, 0],
      ],
      quota_week: [
        [1, 8, 0, 0],
        [1, 8, 0, 0],
      ],
      quota_day_cet: [
        [1, 4, 0, 0],
        [1, 4, 0, 0],
      ],
      sliding_window: [
        [1, 3, 2 * HOUR, 0],
        [1, 3, 2 * HOUR, 0],
      ],
      // A tat 3 days ahead (later + 30 s): a unit costs 30 s and the burst spans 90 s, so denied
      // at T0 until tat + 30 s - 90 s = later - 30 s.
      gcra: [
        [1, 2, 30_000, 0],
        [0, 0, 3 * DAY + 30_000, 3 * DAY - 30_000],
      ],
      // ts_ms 3 days ahead: nothing refills until the clock is back there; 1 more taken. Its
      // reset_after is the refill time of the 2 missing units (60 s), counted as from now: the
      // 3 days until ts_ms are in the key's TTL (reset + ts_ms - now), not in the reply.
      token_bucket: [
        [1, 2, 30_000, 0],
        [1, 1, 60_000, 0],
      ],
    };
    for (const which of SINGLES) {
      const key = `rl:{cb${run++}}:${which}`;
      const twin = new TwinClient();
      const got: number[][] = [];
      for (const now of [later, T0]) {
        const lua = await decideSingle(lib.sha, which, key, 1, now);
        expect(await decideSingle(twin, which, key, 1, now)).toEqual(lua);
        got.push(lua);
      }
      // Quota resets vary with the period's end: compare them apart.
      if (which === 'quota_week' || which === 'quota_day_cet') {
        expect(got.map((r) => [r[0], r[1], r[3]])).toEqual(expected[which].map((r) => [r[0], r[1], r[3]]));
      } else expect(got).toEqual(expected[which]);
    }
  });
});

// --- tiers: every limit in one key ----------------------------------------------------------------

/** The limits of the finding: a fixed window with an offset, an hour sliding window, a day quota (CET rules when zoned), a week quota at UTC+1, a gcra. */
const BASE: Limit[] = [
  { algo: 'fixed_window', limit: 3, periodMs: 60_000, offsetMs: 20_000 },
  { algo: 'sliding_window', limit: 4, periodMs: HOUR, offsetMs: 0 },
  { algo: 'quota', limit: 5, unit: 'day', offsetMs: 0, tz: true },
  { algo: 'quota', limit: 9, unit: 'week', offsetMs: HOUR },
  { algo: 'gcra', limit: 2, periodMs: 60_000, burst: 3, offsetMs: 0 },
];
const limitsFor = (zoned: boolean): Limit[] => BASE.map((l) => (l.tz ? { ...l, tz: zoned } : l));

/** tiers / tiers_peek ARGV for one decision per key, every cost 1. */
const tiersArgv = (limits: readonly Limit[], now: number, keys: number): string[] => [String(limits.length), specsOf(limits), String(now), tzOf(limits), '', ...Array.from({ length: keys }, () => ['', '']).flat()];
const callScript = async (client: Client, def: typeof b.tiersScript, keys: string[], argv: string[]) => (await runScript(client, def, keys, argv)) as number[];

/** A subject's key as Redis holds it, field by field, as the twin's states. */
function decodeTiers(raw: string, limits: readonly Limit[], now: number): (TwinValue | undefined)[] {
  return raw.split('|').map((f, j) => {
    if (f === '') return undefined;
    const l = limits[j]!;
    const window = l.algo === 'fixed_window' ? { start: windowStart(now, l.periodMs!, l.offsetMs), periodMs: l.periodMs! } : l.algo === 'sliding_window' ? { start: windowStart(now, l.periodMs!, 0), periodMs: l.periodMs! } : undefined;
    return toTwinValue(decodeState(l.algo as AlgoName, f, now)!, window);
  });
}

describe('a caller clock that steps back: tiers (every limit in one key)', () => {
  it('the finding\'s steps (the zoned key untouched while the clock is past its expiry, then back): EVALSHA ≡ twin once a key found gone is dropped from the twin too', async () => {
    const tag = `cbt${run++}`;
    const steps: [number, boolean][] = [
      [1774220400000, true],
      [1774000800000, false],
      [1774825260001, false], // 1 ms past the zoned key's expiry (604 800 000 + 60 000 after the first step)
      [1774000800000, false],
      [1774220400000, true],
    ];
    let now = T0;
    const twin = twinOn(() => now);
    const k = (side: string, zoned: boolean) => `rl:{${tag}}:${side}:${zoned}`;
    for (const [t, zoned] of steps) {
      now = t;
      await dropGone(twin, now, [true, false].map((z) => [k('twin', z), [k('fn', z), k('sha', z)]] as const));
      const limits = limitsFor(zoned);
      const argv = tiersArgv(limits, now, 1);
      const [fn, sha, mine] = await Promise.all([callScript(lib.fn, b.tiersScript, [k('fn', zoned)], argv), callScript(lib.sha, b.tiersScript, [k('sha', zoned)], argv), callScript(twin, b.tiersScript, [k('twin', zoned)], argv)]);
      expect(fn).toEqual(sha);
      expect(mine).toEqual(sha);
    }
  });

  it('tiers and tiers_peek over keys zoned and not, the clock back and forth across windows, periods and DST: FCALL ≡ EVALSHA ≡ twin (replies and states)', async () => {
    const step = fc.record({ now: instant, zoned: fc.boolean(), peek: fc.boolean(), subjects: fc.array(fc.integer({ min: 0, max: 2 }), { minLength: 1, maxLength: 3 }) });
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 2, maxLength: 25 }), async (steps) => {
        const tag = `cbp${run++}`;
        let now = T0;
        const twin = twinOn(() => now);
        const k = (side: string, x: number, zoned: boolean) => `rl:{${tag}}:${side}:${x}:${zoned}`;
        const all = [0, 1, 2].flatMap((x) => [true, false].map((z) => [x, z] as const));
        for (const st of steps) {
          now = st.now;
          await dropGone(twin, now, all.map(([x, z]) => [k('twin', x, z), [k('fn', x, z), k('sha', x, z)]] as const));
          const limits = limitsFor(st.zoned);
          const def = st.peek ? b.tiersPeekScript : b.tiersScript;
          const argv = tiersArgv(limits, now, st.subjects.length);
          const keys = (side: string) => st.subjects.map((x) => k(side, x, st.zoned));
          const [fn, sha, mine] = await Promise.all([callScript(lib.fn, def, keys('fn'), argv), callScript(lib.sha, def, keys('sha'), argv), callScript(twin, def, keys('twin'), argv)]);
          expect(fn).toEqual(sha);
          expect(mine).toEqual(sha);
          for (const [x, z] of all) {
            const raw = await lib.sha.get(k('sha', x, z));
            expect(await lib.fn.get(k('fn', x, z))).toEqual(raw);
            const held = twin.store.get(k('twin', x, z), TIERS_KIND, now) as unknown as TiersValue | undefined;
            expect(held === undefined).toBe(raw === null);
            if (held && raw !== null) {
              expect(tiersValueString(held)).toBe(raw);
              expect(decodeTiers(raw, limitsFor(z), now)).toEqual(held.states);
            }
          }
        }
      }),
      { numRuns: 150 },
    );
  });

  it('why the twin was seen to differ: a key no call read while the clock was past its expiry is live again in the twin when the clock steps back (its Redis key, deleted then, stays gone)', async () => {
    const tag = `cbw${run++}`;
    const first = 1774220400000;
    let now = first;
    const twin = twinOn(() => now);
    const key = `rl:{${tag}}:z`;
    const argv = tiersArgv(limitsFor(true), now, 1);
    await callScript(twin, b.tiersScript, [key], argv);
    // Longest state: the week quota (7 days) + the 60 s grace.
    const expiry = first + 7 * DAY + 60_000;
    now = expiry + 1;
    expect(twin.store.has(key, now)).toBe(false); // the test deletes the Redis key here
    // Only another key is decided meanwhile: nothing reads this one, nothing sweeps it (the store's
    // sweep looks back no further than the grace behind the clock).
    await callScript(twin, b.tiersScript, [`rl:{${tag}}:u`], tiersArgv(limitsFor(false), now, 1));
    now = first;
    expect(twin.store.has(key, now)).toBe(true); // back: the twin holds the first step's states again
    // So the fixed window answers 1 left in the twin (the first step's unit counted) where the Lua,
    // its key deleted, answers 2: the finding's "remaining 1 vs 2". dropGone deletes it in both.
    const r = await callScript(twin, b.tiersScript, [key], argv);
    expect(r.slice(1, 3)).toEqual([1, 1]);
  });
  it('why the twin was seen fresher than the Lua: TwinClient({ clock }) leaves its store no clock, and the idle sweep runs at the latest now any call passed, dropping after a step back a key still live at the callers\' now', async () => {
    const tag = `cbi${run++}`;
    let now = T0 + DAY;
    const twin = new TwinClient({ clock: () => now }); // as tiers.test.ts builds it
    const argv = () => tiersArgv(limitsFor(false), now, 1);
    await callScript(twin, b.tiersScript, [`rl:{${tag}}:a`], argv()); // the store has seen T0 + 1 day
    now = T0;
    const key = `rl:{${tag}}:b`;
    const first = await callScript(twin, b.tiersScript, [key], argv());
    // Live until the week quota's period ends (Monday 00:00 at UTC+1: T0 + 2 days 13 h) + the
    // grace on the callers' clock; the idle sweep, at T0 + 1 day, leaves it: its expiry is later.
    expect(twin.store.has(key, now)).toBe(true);
    await idleTurn();
    expect(twin.store.has(key, now)).toBe(true);
    // A key whose longest state ends before T0 + 1 day does go, while the clock says T0: the same
    // tiers without the week quota (the UTC day quota, ending 14 h after T0, is the longest).
    const short = BASE.filter((l) => !(l.algo === 'quota' && l.unit === 'week'));
    const shortKey = `rl:{${tag}}:c`;
    await callScript(twin, b.tiersScript, [shortKey], tiersArgv(short, now, 1));
    expect(twin.store.has(shortKey, now)).toBe(true);
    await idleTurn();
    expect(twin.store.has(shortKey, now)).toBe(false); // swept at T0 + 1 day: Redis would still hold it
    // The same with the store on the callers' clock (twinOn): kept.
    const kept = twinOn(() => now);
    await callScript(kept, b.tiersScript, [`rl:{${tag}}:a`], argv());
    now = T0 + DAY;
    await callScript(kept, b.tiersScript, [`rl:{${tag}}:x`], argv());
    now = T0;
    await callScript(kept, b.tiersScript, [shortKey], tiersArgv(short, now, 1));
    await idleTurn();
    expect(kept.store.has(shortKey, now)).toBe(true);
    expect(first[0]).toBe(T0);
  });
});
