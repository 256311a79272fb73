import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { Redis } from 'ioredis';
import * as b from '../../generated/index.js';
import { TwinClient } from '../../src/twin/client.js';
import { tzRulesFor } from '../../src/client/time-zone.js';
import { ioredis, uniquePrefix } from '../support/redis.js';

/**
 * A quota in an IANA time zone (tz_rules) answers the same on the Lua and on the twin through
 * every path that takes the rules: quota, quota_peek, quota_refund, batch, multi, multi_peek and
 * multi_batch. Random zones, instants around their DST transitions (a day either side, where the
 * 23- and 25-hour days are), random costs; all paths share one state key, so each also has to
 * agree with the others on which period an instant belongs to. And the paths agree with one
 * another: a quota through multi or batch answers exactly what quota.lua answers.
 */
let redis: Redis;
let prefix: string;
let run = 0;
beforeAll(() => {
  redis = ioredis();
  prefix = uniquePrefix('tzpaths');
});
afterAll(() => redis.quit());

const ZONES = ['Europe/Berlin', 'America/New_York', 'Australia/Lord_Howe', 'America/Santiago', 'Asia/Kolkata', 'Pacific/Chatham', 'Europe/London', 'America/Havana', 'UTC'];
const UNITS = ['day', 'week', 'month'] as const;
const H = 3_600_000;
const BASE = Date.UTC(2026, 0, 15);
const windows = new Map(ZONES.map((z) => [z, tzRulesFor(z, BASE)]));

/** The transition instants of a rule string (none for a zone without DST). */
function transitions(rules: string): number[] {
  return rules
    .split(';')
    .slice(1)
    .map((e) => Number(e.split(':')[0]));
}

/** An instant near one of the zone's transitions (or anywhere in the window when it has none). */
function instant(zone: string, pick: number, deltaMs: number): number {
  const w = windows.get(zone)!;
  const ts = transitions(w.rules).filter((t) => t - 3 * 86_400_000 > w.fromMs && t + 3 * 86_400_000 < w.toMs);
  if (ts.length === 0) return w.fromMs + 45 * 86_400_000 + deltaMs;
  return ts[pick % ts.length]! + deltaMs;
}

async function outcome(p: Promise<unknown>): Promise<unknown> {
  try {
    return { ok: await p };
  } catch (err) {
    return { error: (err as Error).message.replace(/ script: .*$/s, '') };
  }
}

type Path = 'quota' | 'quota_peek' | 'quota_refund' | 'batch' | 'multi' | 'multi_peek' | 'multi_batch';
const PATHS: Path[] = ['quota', 'quota', 'quota_peek', 'quota_refund', 'batch', 'multi', 'multi_peek', 'multi_batch'];

describe('quota with tz_rules through every path: Lua ≡ twin', () => {
  it('random zones, units, paths and costs around DST transitions', async () => {
    const step = fc.record({
      path: fc.constantFrom(...PATHS),
      // mostly small steps that cross the transition and the local midnights around it
      advance: fc.oneof(fc.integer({ min: 0, max: 3 * H }), fc.integer({ min: 0, max: 26 * H })),
      cost: fc.integer({ min: 0, max: 7 }),
      share: fc.option(fc.constantFrom(500_000, 900_000), { nil: undefined }),
      gate: fc.integer({ min: 1, max: 3 }),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...ZONES),
        fc.constantFrom(...UNITS),
        fc.integer({ min: 0, max: 5 }),
        fc.integer({ min: -2 * 86_400_000, max: 86_400_000 }),
        fc.integer({ min: 1, max: 20 }),
        fc.array(step, { minLength: 1, maxLength: 16 }),
        async (zone, unit, pick, delta, limit, steps) => {
          const tzRules = windows.get(zone)!.rules;
          const tag = `k${run++}`;
          const key = `${prefix}{${tag}}:q`;
          const gateKey = `${prefix}{${tag}}:g`;
          const twin = new TwinClient();
          let now = instant(zone, pick, delta);
          for (const s of steps) {
            now += s.advance;
            const quota = { limit, unit, cost: s.cost, nowMs: now, tzRules };
            const gate = { key: gateKey, algo: 'fixed_window' as const, limit: 2, periodMs: H, cost: Math.min(s.cost, 1) * s.gate };
            const call = (c: object): Promise<unknown> => {
              const client = c as Redis;
              switch (s.path) {
                case 'quota':
                  return b.quota(client, { key, ...quota, ...(s.share ? { sharePpm: s.share } : {}) });
                case 'quota_peek':
                  return b.quotaPeek(client, { key, ...quota });
                case 'quota_refund':
                  return b.quotaRefund(client, { key, ...quota });
                case 'batch':
                  return b.batch(client, { algo: 'quota', limit, unit, tzRules, nowMs: now, decisions: [{ key, cost: s.cost, sharePpm: s.share }, { key, cost: 1 }] });
                case 'multi':
                case 'multi_peek':
                  return (s.path === 'multi' ? b.multi : b.multiPeek)(client, {
                    nowMs: now,
                    tzRules: `|${tzRules}`,
                    limits: [gate, { key, algo: 'quota', limit, unit, cost: s.cost, sharePpm: s.share }],
                  });
                case 'multi_batch':
                  return b.multiBatch(client, {
                    count: 2,
                    specs: `quota,${limit},,,0,${unit};fixed_window,2,${H},,0,`,
                    tzRules: `${tzRules}|`,
                    nowMs: now,
                    items: [
                      { key, cost: s.cost, sharePpm: s.share },
                      { key: gateKey, cost: gate.cost },
                      { key, cost: 1 },
                      { key: gateKey, cost: 0 },
                    ],
                  });
              }
            };
            const onRedis = await outcome(call(redis));
            expect(onRedis).toHaveProperty('ok');
            expect(await outcome(call(twin))).toEqual(onRedis);
          }
        },
      ),
      { numRuns: 70 },
    );
  });

  it('a quota through batch, multi and multi_batch answers what quota.lua answers (same zone, same instants)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...ZONES),
        fc.constantFrom(...UNITS),
        fc.integer({ min: 0, max: 5 }),
        fc.array(fc.tuple(fc.integer({ min: -30 * H, max: 30 * H }), fc.integer({ min: 0, max: 4 })), { minLength: 1, maxLength: 10 }),
        async (zone, unit, pick, steps) => {
          const tzRules = windows.get(zone)!.rules;
          const tag = `k${run++}`;
          const k = (p: string) => `${prefix}{${tag}}:${p}`;
          const base = instant(zone, pick, 0);
          for (const [delta, cost] of steps.sort((x, y) => x[0] - y[0])) {
            const nowMs = base + delta;
            const direct = await b.quota(redis, { key: k('direct'), limit: 10, unit, cost, nowMs, tzRules });
            const viaBatch = (await b.batch(redis, { algo: 'quota', limit: 10, unit, tzRules, nowMs, decisions: [{ key: k('batch'), cost }] })).decisions[0]!;
            const viaMulti = (await b.multi(redis, { nowMs, tzRules, limits: [{ key: k('multi'), algo: 'quota', limit: 10, unit, cost }] })).limits[0]!;
            const viaMultiBatch = (await b.multiBatch(redis, { count: 1, specs: `quota,10,,,0,${unit}`, tzRules, nowMs, items: [{ key: k('mb'), cost }] })).items[0]!;
            const expected = { ...direct, allowed: direct.allowed ? 1 : 0 };
            expect({ ...viaBatch }).toEqual(expected);
            expect({ ...viaMulti, allowed: viaMulti.allowed ? 1 : 0 }).toEqual(expected);
            expect({ ...viaMultiBatch }).toEqual(expected);
          }
        },
      ),
      { numRuns: 40 },
    );
  });

  it('bad tz_rules are refused with the same BADARG by both', async () => {
    const tag = `k${run++}`;
    const key = `${prefix}{${tag}}:q`;
    const other = `${prefix}{${tag}}:g`;
    const rules = windows.get('Europe/Berlin')!.rules;
    const nowMs = BASE;
    const q = { key, algo: 'quota' as const, limit: 5, unit: 'day' as const };
    const g = { key: other, algo: 'gcra' as const, limit: 5, periodMs: 1_000 };
    const calls: ((c: Redis) => Promise<unknown>)[] = [
      (c) => b.quota(c, { key, limit: 5, unit: 'day', nowMs, tzRules: '3600000;x' }),
      (c) => b.quotaPeek(c, { key, limit: 5, unit: 'day', nowMs, tzRules: '3600000;2000:0;1000:0' }),
      (c) => b.quotaRefund(c, { key, limit: 5, unit: 'day', nowMs, tzRules: '99999999' }),
      (c) => b.batch(c, { algo: 'gcra', limit: 5, periodMs: 1_000, tzRules: rules, nowMs, decisions: [{ key: other }] }),
      (c) => b.batch(c, { algo: 'quota', limit: 5, unit: 'day', tzRules: 'nope', nowMs, decisions: [{ key }] }),
      (c) => b.multi(c, { nowMs, tzRules: rules, limits: [q, g] }),
      (c) => b.multi(c, { nowMs, tzRules: `|${rules}`, limits: [q, g] }),
      (c) => b.multi(c, { nowMs, tzRules: `${rules}||`, limits: [q, g] }),
      (c) => b.multiPeek(c, { nowMs, tzRules: `${'0;'.repeat(600)}0|`, limits: [q, g] }),
      (c) => b.multi(c, { nowMs, tzRules: `3600000;5:0;5:0|`, limits: [q, g] }),
      (c) => b.multiBatch(c, { count: 2, specs: 'quota,5,,,0,day;gcra,5,1000,,,', tzRules: `|${rules}`, nowMs, items: [{ key }, { key: other }] }),
      (c) => b.multiBatch(c, { count: 2, specs: 'quota,5,,,0,day;gcra,5,1000,,,', tzRules: rules, nowMs, items: [{ key }, { key: other }] }),
    ];
    for (const call of calls) {
      const twin = new TwinClient();
      const onRedis = await outcome(call(redis));
      expect((onRedis as { error?: string }).error).toMatch(/BADARG redlimit \w+: .*tz_rules/);
      expect(await outcome(call(twin as unknown as Redis))).toEqual(onRedis);
    }
    expect(await redis.exists(key, other)).toBe(0);
  });
});
