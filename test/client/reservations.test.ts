import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { InvalidArgumentError } from '../../src/errors.js';
import { runScript } from '../../src/runtime/index.js';
import { compileLimit, type LimitPlan } from '../../src/client/plan.js';
import { limitKey, resolveSubject } from '../../src/client/keys.js';
import {
  ReservationError,
  checkReservable,
  decodeSettle,
  encodeHandle,
  parseHandle,
  reserveCall,
  settleCall,
  settledOrThrow,
} from '../../src/client/reservations.js';
import { gcraRead } from '../../src/twin/algorithms.js';
import { MemoryStore } from '../../src/twin/store.js';
import { ioredis, redisUrl, uniquePrefix } from '../support/redis.js';
import { repoRoot } from '../support/temp-scripts.js';
import { DAY, LIMITS, MAX_OVERAGE } from '../support/reservation-limits.js';

const exec = promisify(execFile);
let redis: Redis;
let prefix: string;
let n = 0;
beforeAll(() => {
  redis = ioredis();
  prefix = uniquePrefix('rsvclient').slice(0, -1);
});
afterAll(() => redis.quit());

const plans: LimitPlan[] = [
  compileLimit({ name: 'rpm', algo: 'gcra', limit: 60, periodMs: 60_000, burst: 10 }, 1),
  compileLimit({ name: 'tpm', algo: 'gcra', limit: 1000, periodMs: 60_000 }, 1),
];
const names = plans.map((p) => p.name);
const keysOf = (id: string) => plans.map((p) => limitKey(prefix, resolveSubject(id), p.name, null));
const agent = () => `agent${n++}`;

async function run(call: { def: Parameters<typeof runScript>[1]; keys: string[]; argv: string[] }): Promise<number[]> {
  return (await runScript(redis, call.def, call.keys, call.argv)) as number[];
}
async function reserve(keys: string[], estimate: number, ttlMs = 60_000) {
  const call = reserveCall(plans, false, keys, [1, estimate], ttlMs);
  return { handle: call.handle, reply: await run(call) };
}
async function settle(handle: string, mode: 'commit' | 'cancel', actual: number | null, overage?: 'debt' | 'cap') {
  return decodeSettle(await run(settleCall(handle, mode, actual === null ? null : [1, actual], { overage })), names);
}
const raw = (keys: readonly string[]) => Promise.all(keys.map((k) => redis.get(k)));

describe('reservation handles', () => {
  it('a handle is a string another process can settle: version, 128-bit id, the keys, a check', async () => {
    const keys = keysOf(agent());
    const { handle, reply } = await reserve(keys, 800);
    expect(reply.slice(0, 3)).toEqual([1, 0, 0]);
    expect(handle).toMatch(/^rsv1\.[0-9a-f]{32}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{11}$/);
    const r = parseHandle(handle);
    expect(r.keys).toEqual(keys);
    expect(r.recordKey).toBe(`${prefix}:{${keys[0]!.split('{')[1]!.split('}')[0]}}:!rsv:${r.rid}`);
    expect(await redis.exists(r.recordKey)).toBe(1);
    expect(encodeHandle(r)).toBe(handle);
  });

  it('a tampered or malformed handle is refused before any round trip, and nothing is written', async () => {
    const keys = keysOf(agent());
    const { handle } = await reserve(keys, 800);
    const before = await raw([...keys, parseHandle(handle).recordKey]);
    const [v, rid, body, check] = handle.split('.');
    const otherKeys = Buffer.from(JSON.stringify(keysOf('someone-else'))).toString('base64url');
    const flip = (s: string) => (s[5] === 'a' ? `${s.slice(0, 5)}b${s.slice(6)}` : `${s.slice(0, 5)}a${s.slice(6)}`);
    for (const bad of [
      `${v}.${flip(rid!)}.${body}.${check}`, // another id
      `${v}.${rid}.${otherKeys}.${check}`, // other keys
      `${v}.${rid}.${body}.${flip(check!)}`,
      `rsv2.${rid}.${body}.${check}`,
      handle.slice(0, -3),
      `${handle}x`,
      '',
      'rsv1...',
      42 as unknown as string,
    ]) {
      expect(() => settleCall(bad, 'commit', [1, 1])).toThrow(InvalidArgumentError);
    }
    expect(await raw([...keys, parseHandle(handle).recordKey])).toEqual(before);
  });

  it('actual < 0, NaN, fractions, Infinity and too many actuals are refused before any round trip', async () => {
    const keys = keysOf(agent());
    const { handle } = await reserve(keys, 800);
    const before = await raw(keys);
    for (const actual of [-1, Number.NaN, 0.5, Number.POSITIVE_INFINITY]) expect(() => settleCall(handle, 'commit', [1, actual])).toThrow(InvalidArgumentError);
    expect(() => settleCall(handle, 'commit', [1, 1, 1])).toThrow(InvalidArgumentError);
    expect(() => settleCall(handle, 'commit', null)).toThrow(InvalidArgumentError);
    expect(() => settleCall(handle, 'keep' as never, [1, 1])).toThrow(InvalidArgumentError);
    expect(() => reserveCall(plans, false, keys, [1, -5], 1000)).toThrow(InvalidArgumentError);
    expect(() => reserveCall(plans, false, keys, [1, 5], 0)).toThrow(InvalidArgumentError);
    expect(() => reserveCall(plans, false, keys, [1, 5], 86_400_001)).toThrow(InvalidArgumentError);
    expect(() => reserveCall(plans, false, keys, [1], 1000)).toThrow(InvalidArgumentError);
    expect(await raw(keys)).toEqual(before);
  });

  it('a handle for another subject: refused before the round trip when the caller names its subject, else a mismatch or unknown from Redis', async () => {
    const mine = keysOf(agent());
    const theirs = keysOf(agent());
    const { handle } = await reserve(mine, 800);
    expect(() => settleCall(handle, 'commit', [1, 1], { expectKeys: theirs })).toThrow(ReservationError);
    // A handle forged with the same id on the other subject's keys names another record: unknown.
    const forged = encodeHandle({ ...parseHandle(handle), keys: theirs, recordKey: '' });
    await expect(settle(forged, 'commit', 1).then((o) => settledOrThrow(o, forged))).rejects.toMatchObject({ status: 'unknown', code: 'ERR_INVALID_ARGUMENT' });
    // The same id and tag with the keys in another order: the record was made for other keys.
    const reordered = encodeHandle({ ...parseHandle(handle), keys: [...mine].reverse() });
    const before = await raw(mine);
    const outcome = await settle(reordered, 'commit', 1);
    expect(outcome.status).toBe('mismatch');
    expect(() => settledOrThrow(outcome, reordered)).toThrow(ReservationError);
    expect(await raw(mine)).toEqual(before);
  });

  it('refuses, at construction, limits that cannot give units back', () => {
    expect(() => checkReservable([compileLimit({ name: 'log', algo: 'sliding_log', limit: 5, periodMs: 1000 }, 1)])).toThrow(InvalidArgumentError);
    expect(() => checkReservable(plans)).not.toThrow();
  });
});

describe('reserve → commit / cancel on the server clock', () => {
  it('commit less gives the difference back; the outcome names each limit', async () => {
    const keys = keysOf(agent());
    const { handle } = await reserve(keys, 800);
    const out = await settle(handle, 'commit', 300);
    expect(out.status).toBe('committed');
    expect(out.limits.map((l) => l.name)).toEqual(['rpm', 'tpm']);
    expect(out.limits[1]!.remaining).toBeGreaterThanOrEqual(700);
  });

  it('commit more goes into debt: a later reservation waits; cap leaves no debt', async () => {
    const keys = keysOf(agent());
    const { handle } = await reserve(keys, 100);
    expect((await settle(handle, 'commit', 1_400)).limits[1]!.remaining).toBe(0); // 400 in debt
    const later = await reserve(keys, 1);
    expect(later.reply.slice(0, 2)).toEqual([0, 2]);
    expect(later.reply[2]).toBeGreaterThan(20_000); // 401 tokens of refill at 60 ms each, less what passed
    const capped = keysOf(agent());
    const c = await reserve(capped, 100);
    await settle(c.handle, 'commit', 1_400, 'cap');
    // Nothing owed: the next token is at most 60 ms away.
    expect((await reserve(capped, 1)).reply[2]).toBeLessThanOrEqual(60);
  });

  it('cancel gives everything back; a second commit or cancel says already settled and writes nothing', async () => {
    const keys = keysOf(agent());
    const { handle } = await reserve(keys, 800);
    expect((await settle(handle, 'cancel', null)).status).toBe('cancelled');
    expect(await raw(keys)).toEqual([null, null]);
    const again = await settle(handle, 'commit', 900);
    expect(settledOrThrow(again, handle).status).toBe('already-settled');
    expect((await settle(handle, 'cancel', null)).status).toBe('already-settled');
    expect(await raw(keys)).toEqual([null, null]);
  });

  it('an expired reservation counted at its estimate, and a late commit is an unknown handle', async () => {
    const keys = keysOf(agent());
    const { handle } = await reserve(keys, 800, 100);
    const record = parseHandle(handle).recordKey;
    for (let i = 0; i < 200 && (await redis.exists(record)) === 1; i++) await new Promise((r) => setTimeout(r, 20));
    expect(await redis.exists(record)).toBe(0);
    const before = await raw(keys);
    const out = await settle(handle, 'commit', 0);
    expect(out.status).toBe('unknown');
    expect(() => settledOrThrow(out, handle)).toThrow(ReservationError);
    expect(await raw(keys)).toEqual(before);
    expect((await reserve(keys, 300)).reply[0]).toBe(0); // the 800 stayed taken
  });
});

describe('fleet', () => {
  it('8 processes reserving and settling random amounts: every unit accounted, debt within its bound, no handle settled twice, expired ones count at their estimate', async () => {
    const fleetPrefix = uniquePrefix('rsvfleet').slice(0, -1);
    const [sec] = (await redis.time()) as unknown as [string, string];
    const offset = (Number(sec) * 1000 - 1000) % (366 * DAY);
    const worker = join(repoRoot, 'test/support/reservation-worker.ts');
    const outputs = await Promise.all(
      Array.from({ length: 8 }, (_, i) => exec(process.execPath, ['--import', 'tsx', worker, redisUrl(), fleetPrefix, '100', String(1000 + i), String(offset)], { cwd: repoRoot, timeout: 120_000 })),
    );
    const results = outputs.map((o) => JSON.parse(o.stdout) as { net: number[]; admitted: number; denied: number; twice: number; late: number; unknownLate: number });
    const net = [0, 1, 2].map((j) => results.reduce((s, r) => s + r.net[j]!, 0));
    const settledOnce = results.reduce((s, r) => s + r.admitted - r.late, 0);
    expect(results.reduce((s, r) => s + r.twice, 0)).toBe(settledOnce);
    expect(results.reduce((s, r) => s + r.unknownLate, 0)).toBe(results.reduce((s, r) => s + r.late, 0));
    expect(results.reduce((s, r) => s + r.denied, 0)).toBeGreaterThan(0); // the limits were contended

    // What the limits hold now is exactly what the fleet's ledgers say was used.
    const limits = LIMITS(offset);
    const subject = resolveSubject({ id: 'agent', hashTag: 'fleet' });
    const keys = limits.map((l) => limitKey(fleetPrefix, subject, l.name, null));
    const [s2, us] = (await redis.time()) as unknown as [string, string];
    const now = Number(s2) * 1000 + Math.floor(Number(us) / 1000);
    const store = new MemoryStore();
    const bound = 8 * MAX_OVERAGE; // each process has at most one reservation in flight
    for (const j of [0, 1]) {
      // gcra state: "ms:num", or (v3) the integer ms then num in six digits (sliced as a string).
      const raw = (await redis.get(keys[j]!))!;
      const [tatMs, tatNum] = raw.includes(':') ? (raw.split(':').map(Number) as [number, number]) : [raw.length > 6 ? Number(raw.slice(0, -6)) : 0, Number(raw.slice(-6))];
      store.set(keys[j]!, { kind: 'gcra', tatMs, tatNum }, Infinity);
      const l = limits[j]!;
      const [whole] = gcraRead(store, keys[j]!, l.limit, l.periodMs, l.burst!, now);
      expect(l.burst! - whole).toBe(net[j]);
      expect(whole).toBeGreaterThanOrEqual(-bound);
    }
    // fixed_window state: "start:count", or (v3, on the server clock) the integer count * 2^22 + start mod 2^22.
    const rawWindow = (await redis.get(keys[2]!))!;
    const used = rawWindow.includes(':') ? Number(rawWindow.split(':')[1]) : Math.floor(Number(rawWindow) / 2 ** 22);
    expect(used).toBe(net[2]);
    expect(used).toBeLessThanOrEqual(limits[2]!.limit + bound);
  }, 150_000);
});
