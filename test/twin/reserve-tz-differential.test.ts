import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { Redis } from 'ioredis';
import * as b from '../../generated/index.js';
import { tzRulesFor } from '../../src/client/time-zone.js';
import { TwinClient } from '../../src/twin/client.js';
import { ioredis, uniquePrefix } from '../support/redis.js';

/**
 * reserve v3 (tz_rules) and settle v3 with quotas in IANA time zones: the twin answers exactly as
 * the Lua does. One subject, two limits: a quota (day, week or month) in a random zone, beside a
 * gcra or a second quota (fixed offset or another zone); the clock starts within two days of one
 * of the zone's DST transitions and moves in random steps of up to 14 hours (ms jitter included),
 * so reservations are settled in their own period, after local midnight, and across 23- and
 * 25-hour days. Reservation ids come from a small pool (replays, reuse, second settles); a call may
 * send its rules or not, or malformed ones (the refusals must agree too).
 */
let redis: Redis;
let prefix: string;
let run = 0;
beforeAll(() => {
  redis = ioredis();
  prefix = uniquePrefix('rsvtzdiff');
});
afterAll(() => redis.quit());

const ZONES = ['Europe/Berlin', 'America/New_York', 'Australia/Sydney', 'America/Santiago', 'Pacific/Chatham', 'Europe/London', 'Asia/Kolkata', 'America/St_Johns'];
const HOUR = 3_600_000;
const BASE = Date.UTC(2026, 0, 1);

/** Rules built once per zone (the window covers BASE - 40 days .. BASE + 400 days). */
const rules = new Map(ZONES.map((z) => [z, tzRulesFor(z, BASE).rules]));
/** The zone's transitions in the window (none for Asia/Kolkata: then BASE + 100 days). */
function transitions(zone: string): number[] {
  const t = rules.get(zone)!.split(';').slice(1).map((e) => Number(e.split(':')[0]));
  return t.length ? t : [BASE + 100 * 24 * HOUR];
}

type Second = { kind: 'gcra'; limit: number; periodMs: number } | { kind: 'quota'; limit: number; unit: 'day' | 'week' | 'month'; offsetMs: number; zone: string | null };

const second: fc.Arbitrary<Second> = fc.oneof(
  fc.record({ kind: fc.constant('gcra' as const), limit: fc.integer({ min: 1, max: 20 }), periodMs: fc.integer({ min: 1_000, max: 4 * HOUR }) }),
  fc.record({
    kind: fc.constant('quota' as const),
    limit: fc.integer({ min: 1, max: 30 }),
    unit: fc.constantFrom('day', 'week', 'month') as fc.Arbitrary<'day' | 'week' | 'month'>,
    offsetMs: fc.integer({ min: -12, max: 14 }).map((h) => h * HOUR),
    zone: fc.option(fc.constantFrom(...ZONES), { nil: null }),
  }),
);

const setup = fc.record({
  zone: fc.constantFrom(...ZONES),
  unit: fc.constantFrom('day', 'day', 'week', 'month') as fc.Arbitrary<'day' | 'week' | 'month'>,
  limit: fc.integer({ min: 1, max: 30 }),
  offsetMs: fc.integer({ min: -12, max: 14 }).map((h) => h * HOUR),
  second,
  which: fc.nat(),
  around: fc.integer({ min: -48 * 60, max: 48 * 60 }).map((m) => m * 60_000),
});

const op = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('reserve' as const),
      rid: fc.integer({ min: 0, max: 3 }),
      ttl: fc.constantFrom(HOUR, 6 * HOUR, 24 * HOUR, 90_000),
      est: fc.tuple(fc.integer({ min: 0, max: 20 }), fc.integer({ min: 0, max: 20 })),
      // 'zones': the rules; 'none': no tz_rules; 'bad': a malformed or misplaced entry
      tz: fc.constantFrom('zones', 'zones', 'zones', 'none', 'bad'),
      bad: fc.constantFrom('x;1', '3600000;5:1;4:2', '|', 'rule-on-2nd', '3600000;12:99999999999'),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('settle' as const),
      rid: fc.integer({ min: 0, max: 3 }),
      mode: fc.constantFrom('commit', 'commit', 'cancel') as fc.Arbitrary<'commit' | 'cancel'>,
      overage: fc.constantFrom('debt', 'cap', undefined) as fc.Arbitrary<'debt' | 'cap' | undefined>,
      actual: fc.tuple(fc.option(fc.integer({ min: 0, max: 40 }), { nil: undefined }), fc.option(fc.integer({ min: 0, max: 40 }), { nil: undefined })),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('take' as const), cost: fc.integer({ min: 0, max: 10 }) }) },
);
const step = fc.tuple(fc.integer({ min: 0, max: 14 * 60 }).map((m) => m * 60_000), fc.integer({ min: 0, max: 999 }), op);

async function outcome(p: Promise<unknown>): Promise<unknown> {
  try {
    return { ok: await p };
  } catch (err) {
    return { error: (err as Error).constructor.name, message: (err as Error).message.replace(/ script: .*$/s, '') };
  }
}

describe('twin ≡ Lua: reserve v3 / settle v3 with quotas in time zones, around DST', () => {
  it('every reply, record and refusal agree', async () => {
    await fc.assert(
      fc.asyncProperty(setup, fc.array(step, { minLength: 1, maxLength: 20 }), async (st, steps) => {
        const tag = `k${run++}`;
        const keys = [`${prefix}{${tag}}:q`, `${prefix}{${tag}}:b`];
        const record = (rid: number) => `${prefix}{${tag}}:!rsv:${rid}`;
        const twin = new TwinClient();
        const ts = transitions(st.zone);
        let now = ts[st.which % ts.length]! + st.around;
        const first = { key: keys[0]!, algo: 'quota' as const, limit: st.limit, unit: st.unit, offsetMs: st.offsetMs };
        const sec = st.second;
        const other = sec.kind === 'gcra' ? { key: keys[1]!, algo: 'gcra' as const, limit: sec.limit, periodMs: sec.periodMs } : { key: keys[1]!, algo: 'quota' as const, limit: sec.limit, unit: sec.unit, offsetMs: sec.offsetMs };
        const zones = `${rules.get(st.zone)}|${sec.kind === 'quota' && sec.zone ? rules.get(sec.zone) : ''}`;
        for (const [advance, jitter, o] of steps) {
          now += advance + jitter;
          const call = (client: object) => {
            if (o.kind === 'reserve') {
              let tzRules = o.tz === 'zones' ? zones : '';
              if (o.tz === 'bad') tzRules = o.bad === 'rule-on-2nd' ? `|${rules.get(st.zone)}` : o.bad === '|' ? '||' : `${o.bad}|`;
              if (o.tz === 'bad' && o.bad === 'rule-on-2nd' && sec.kind === 'quota') tzRules = `${rules.get(st.zone)}`; // one entry for two limits
              const limits = [
                { ...first, cost: o.est[0]! },
                { ...other, cost: o.est[1]! },
              ];
              return b.reserve(client as Redis, { recordKey: record(o.rid), ttlMs: o.ttl, nowMs: now, tzRules, limits });
            }
            if (o.kind === 'take') return b.quota(client as Redis, { key: keys[0]!, limit: st.limit, unit: st.unit, utcOffsetMs: st.offsetMs, cost: o.cost, nowMs: now, tzRules: rules.get(st.zone)! });
            const actuals = keys.map((key, i) => ({ key, actual: o.actual[i] }));
            return b.settle(client as Redis, { recordKey: record(o.rid), mode: o.mode, overage: o.overage, nowMs: now, actuals });
          };
          const onRedis = await outcome(call(redis));
          const onTwin = await outcome(call(twin));
          expect(onTwin).toEqual(onRedis);
          if (o.kind === 'reserve' && (onRedis as { ok?: { allowed: boolean } }).ok?.allowed) {
            // The record itself (periods included) is the same string.
            const stored = await redis.get(record(o.rid));
            const inTwin = (twin.store.get(record(o.rid), 'reservation' as never, now) as unknown as { text: string } | undefined)?.text ?? null;
            expect(inTwin).toEqual(stored);
          }
        }
      }),
      { numRuns: 120 },
    );
  });
});
