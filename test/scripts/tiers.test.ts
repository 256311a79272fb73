import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import * as b from '../../generated/index.js';
import { InvalidArgumentError, MemoryStore, ScriptError, TwinClient } from '../../src/index.js';
import { runScript } from '../../src/runtime/index.js';
import type { ScriptDef } from '../../src/runtime/script-def.js';
import { decodeState, toTwinValue, type AlgoName } from '../../src/twin/state.js';
import type { TwinValue } from '../../src/twin/store.js';
import { TIERS_KIND, tiersValueString, type TiersValue } from '../../src/twin/tiers.js';
import { windowStart } from '../../src/twin/windows.js';
import { functionsServerForFile } from '../support/redis.js';
import { CET, DAY, GRACE, T0, multiGroup, specsOf, tzOf, type Algo, type Limit } from '../support/tiers.js';

/**
 * tiers, tiers_peek, tiers_refund and tiers_reset (lib/tiers): every limit of a subject in ONE
 * key. The claim: a subject's key answers exactly as multi over one key per limit answers
 * (tiers ≡ multi, tiers_peek ≡ multi_peek, tiers_refund ≡ each limit's *_refund, tiers_reset of
 * some limits ≡ DEL of their keys), through FCALL (a Functions library keeps its memos and its
 * rl_plain_forms flag between calls) and EVALSHA alike, and the twin (src/twin/tiers.ts) answers
 * and keeps the same states. The key holds each state in its self-describing (plain) form, so a
 * state that outlives its own window while another limit keeps the key alive cannot alias a
 * later window's.
 */
const lib = functionsServerForFile();

let run = 0;

const PERIODS = [1000, 7000, 60_000, 3_600_000, 2 ** 21];
const limitArb: fc.Arbitrary<Limit> = fc.oneof(
  fc.record({ algo: fc.constantFrom<Algo>('gcra', 'token_bucket'), limit: fc.integer({ min: 1, max: 5 }), periodMs: fc.constantFrom(...PERIODS), extra: fc.integer({ min: 0, max: 3 }) }).map(({ extra, ...l }) => ({ ...l, burst: l.limit + extra, offsetMs: 0 })),
  fc.record({ limit: fc.integer({ min: 1, max: 5 }), periodMs: fc.constantFrom(...PERIODS), at: fc.integer({ min: 0, max: 999 }) }).map(({ at, ...l }) => ({ algo: 'fixed_window' as const, ...l, offsetMs: Math.floor((at * l.periodMs) / 1000) })),
  fc.record({ limit: fc.integer({ min: 1, max: 5 }), periodMs: fc.constantFrom(...PERIODS) }).map((l) => ({ algo: 'sliding_window' as const, ...l, offsetMs: 0 })),
  fc
    .record({ limit: fc.integer({ min: 1, max: 6 }), unit: fc.constantFrom<'day' | 'week' | 'month'>('day', 'week', 'month'), offsetMs: fc.constantFrom(0, 3_600_000, -18_000_000, 50_400_000, -50_400_000), tz: fc.boolean() })
    .map((l) => ({ algo: 'quota' as const, ...l })),
);

type Client = Parameters<typeof runScript>[0];
const call = async (client: Client, def: ScriptDef, keys: string[], argv: string[]) => (await runScript(client, def, keys, argv)) as number[];

/** tiers / tiers_peek ARGV: count, specs, now_ms, tz_rules, adopt ('' none), then per decision costs and shares. */
function tiersArgv(limits: readonly Limit[], now: number | undefined, decisions: readonly { costs?: number[]; shares?: number[] }[], adopt = ''): string[] {
  return [String(limits.length), specsOf(limits), now === undefined ? '' : String(now), tzOf(limits), adopt, ...decisions.flatMap((d) => [d.costs ? d.costs.join(',') : '', d.shares ? d.shares.join(',') : ''])];
}

/** A subject's key as each side names it. */
type Side = 'fn' | 'sha' | 'twin';
const SIDES: Side[] = ['fn', 'sha', 'twin'];

/** The window a limit reads at `now` (a packed state needs it; plain ones do not). */
function windowOf(l: Limit, now: number): { start: number; periodMs: number } | undefined {
  if (l.algo === 'fixed_window') return { start: windowStart(now, l.periodMs!, l.offsetMs), periodMs: l.periodMs! };
  if (l.algo === 'sliding_window') return { start: windowStart(now, l.periodMs!, 0), periodMs: l.periodMs! };
  return undefined;
}

/** A subject's key as Redis holds it, each '|' field decoded with its algorithm's decoder (state.ts). */
function decodeTiers(raw: string, limits: readonly Limit[], now: number): (TwinValue | undefined)[] {
  const fields = raw.split('|');
  expect(fields).toHaveLength(limits.length);
  return fields.map((f, j) => {
    if (f === '') return undefined;
    const l = limits[j]!;
    const state = decodeState(l.algo as AlgoName, f, now)!;
    // Self-describing forms only: no window tag, no token bucket clock remainder.
    expect(state.form === 'packed' && (l.algo === 'fixed_window' || l.algo === 'sliding_window')).toBe(false);
    expect(state.form).not.toBe('compact');
    return toTwinValue(state, windowOf(l, now));
  });
}

function twinValue(twin: TwinClient, key: string, now: number): TiersValue | undefined {
  return twin.store.get(key, TIERS_KIND, now) as unknown as TiersValue | undefined;
}

/** A single limit's refund on its own key (the *_refund script of its algorithm). */
async function singleRefund(l: Limit, key: string, cost: number, now: number): Promise<[number, number]> {
  const c = lib.sha;
  let r: { remaining: number; resetAfterMs: number };
  switch (l.algo) {
    case 'gcra':
      r = await b.gcraRefund(c, { key, limit: l.limit, periodMs: l.periodMs!, burst: l.burst, cost, nowMs: now });
      break;
    case 'token_bucket':
      r = await b.tokenBucketRefund(c, { key, limit: l.limit, periodMs: l.periodMs!, burst: l.burst, cost, nowMs: now });
      break;
    case 'fixed_window':
      r = await b.fixedWindowRefund(c, { key, limit: l.limit, periodMs: l.periodMs!, offsetMs: l.offsetMs, cost, nowMs: now });
      break;
    case 'sliding_window':
      r = await b.slidingWindowRefund(c, { key, limit: l.limit, periodMs: l.periodMs!, cost, nowMs: now });
      break;
    default:
      r = await b.quotaRefund(c, { key, limit: l.limit, unit: l.unit!, utcOffsetMs: l.offsetMs, cost, nowMs: now, ...(l.tz ? { tzRules: CET } : {}) });
  }
  return [r.remaining, r.resetAfterMs];
}

interface Decision {
  subject: number;
  costs?: number[];
  shares?: number[];
}
interface Op {
  advance: number;
  kind: 'tiers' | 'peek' | 'refund' | 'reset';
  decisions: Decision[];
  which: number[];
}

const SUBJECTS = 3;

function opsArb(count: number): fc.Arbitrary<Op[]> {
  const cost = fc.oneof({ weight: 6, arbitrary: fc.integer({ min: 0, max: 3 }) }, { weight: 2, arbitrary: fc.integer({ min: 4, max: 9 }) }, { weight: 1, arbitrary: fc.constant(1000) });
  const decision = fc.record({
    subject: fc.integer({ min: 0, max: SUBJECTS - 1 }),
    costs: fc.option(fc.array(cost, { minLength: count, maxLength: count }), { nil: undefined, freq: 4 }),
    shares: fc.option(fc.array(fc.constantFrom(0, 300_000, 500_000, 999_999, 1_000_000), { minLength: count, maxLength: count }), { nil: undefined, freq: 2 }),
  });
  const positions = Array.from({ length: count }, (_, j) => j + 1);
  const op = fc.record({
    // Steps within a window, across a few, and far past every window but the calendar's.
    advance: fc.oneof({ weight: 2, arbitrary: fc.constant(0) }, { weight: 4, arbitrary: fc.integer({ min: 1, max: 3000 }) }, { weight: 3, arbitrary: fc.integer({ min: 3000, max: 400_000 }) }, { weight: 1, arbitrary: fc.integer({ min: 400_000, max: 3 * DAY }) }),
    kind: fc.constantFrom<Op['kind']>('tiers', 'tiers', 'tiers', 'tiers', 'peek', 'refund', 'reset'),
    decisions: fc.array(decision, { minLength: 1, maxLength: 5 }),
    which: fc.subarray(positions, { minLength: 1 }),
  });
  return fc.array(op, { minLength: 1, maxLength: 10 });
}

describe('tiers: one key per subject ≡ multi over one key per limit', () => {
  it('tiers, tiers_peek, tiers_refund, tiers_reset (and tiers_node_batch): FCALL ≡ EVALSHA ≡ twin (replies, states, expiry), and ≡ multi / multi_peek / *_refund / DEL on per-limit keys, from per-limit keys\' states (adopt) or none', async () => {
    // history: decisions made on a key per limit first (multi, the layout before), which the
    // subject's key then takes over (adopt); empty: the subject starts with nothing (always with
    // one limit, whose subject's key is its own key).
    const scenario = fc
      .array(limitArb, { minLength: 1, maxLength: 4 })
      .chain((limits) => fc.tuple(fc.constant(limits), opsArb(limits.length), fc.integer({ min: 0, max: DAY - 1 }), limits.length > 1 ? fc.oneof(fc.constant([] as Op[]), opsArb(limits.length)) : fc.constant([] as Op[])));
    await fc.assert(
      fc.asyncProperty(scenario, async ([limits, ops, start, history]) => {
        const tag = `tp${run++}`;
        const nodeRun = run % 2 === 0;
        const count = limits.length;
        let now = T0 + start;
        // tiers_reset reads no clock: the twin's store tells what is live by its own, the callers' one.
        const twin = new TwinClient({ clock: () => now });
        // Each side's subjects: the key of every limit (`l0+l1+...`) and each limit's own key
        // (`l0`, ...: what a key per limit named, adopted by the subject's key); 'm': the
        // reference, a key per limit throughout.
        const names = limits.map((_, j) => `l${j}`);
        const adopt = names.join('+');
        const own = (side: Side | 'm', s: number, j: number) => `rl:{${tag}${side}${s}}:${names[j]}`;
        const key = (side: Side, s: number) => `rl:{${tag}${side}${s}}:${adopt}`;
        const perLimit = (s: number, j: number) => own('m', s, j);
        const client = (side: Side): Client => (side === 'fn' ? lib.fn : side === 'sha' ? lib.sha : twin);
        const multiArgv = (dec: Decision) => [String(now), tzOf(limits), ...limits.flatMap((l, j) => multiGroup(l, dec.costs ? dec.costs[j]! : 1, dec.shares?.[j]))];
        for (const op of history) {
          now += op.advance;
          for (const dec of op.decisions) {
            const replies = await Promise.all([...SIDES, 'm' as const].map((side) => call(side === 'm' ? lib.sha : client(side), b.multiScript, limits.map((_, j) => own(side, dec.subject, j)), multiArgv(dec))));
            for (const r of replies) expect(r).toEqual(replies[0]);
          }
        }
        for (const op of ops) {
          now += op.advance;
          // What expired by now on the caller's clock (PX ttl + grace) expires in Redis too: the
          // tests run in less real time than the grace, so it is deleted by hand where the twin
          // (whose clock is now_ms) no longer holds it.
          for (let s = 0; s < SUBJECTS; s++) {
            if (!twin.store.has(key('twin', s), now)) await lib.sha.del(key('fn', s), key('sha', s));
            for (let j = 0; j < count; j++) if (!twin.store.has(own('twin', s, j), now)) await lib.sha.del(own('fn', s, j), own('sha', s, j));
          }
          const argv = tiersArgv(limits, now, op.decisions, adopt);
          if (op.kind === 'tiers' || op.kind === 'peek') {
            const def = op.kind === 'tiers' ? b.tiersScript : b.tiersPeekScript;
            // In half the runs FCALL's side and the twin decide through tiers_node_batch (what a
            // Cluster primary runs: the items carry their keys), which must answer and write as
            // tiers does (EVALSHA's side).
            const viaNode = (side: Side) => op.kind === 'tiers' && side !== 'sha' && nodeRun;
            const nodeArgv = (side: Side) => [...argv.slice(0, 5), ...op.decisions.flatMap((d, i) => [key(side, d.subject), argv[5 + 2 * i]!, argv[6 + 2 * i]!])];
            const replies = await Promise.all(SIDES.map((side) => (viaNode(side) ? call(client(side), b.tiersNodeBatchScript, [], nodeArgv(side)) : call(client(side), def, op.decisions.map((d) => key(side, d.subject)), argv))));
            expect(replies[0]).toHaveLength(1 + op.decisions.length * count * 4);
            expect(replies[1]).toEqual(replies[0]);
            expect(replies[2]).toEqual(replies[0]);
            const r = replies[0]!;
            expect(r[0]).toBe(now);
            // The same decisions, in order, as multi (multi_peek) over one key per limit.
            const mdef = op.kind === 'tiers' ? b.multiScript : b.multiPeekScript;
            for (const [d, dec] of op.decisions.entries()) {
              const groups = limits.flatMap((l, j) => multiGroup(l, dec.costs ? dec.costs[j]! : 1, dec.shares?.[j]));
              const m = await call(lib.sha, mdef, limits.map((_, j) => perLimit(dec.subject, j)), [String(now), tzOf(limits), ...groups]);
              expect(r.slice(1 + d * count * 4, 1 + (d + 1) * count * 4)).toEqual(m.slice(3));
            }
            if (op.kind === 'tiers') {
              // The key's expiry after its last decision of the call, if that one admitted: the
              // longest reset_after of its limits (each state's own expiry), plus the grace.
              const last = new Map<number, number>();
              op.decisions.forEach((dec, d) => last.set(dec.subject, d));
              for (const [s, d] of last) {
                const part = r.slice(1 + d * count * 4, 1 + (d + 1) * count * 4);
                if (part.some((_, i) => i % 4 === 0 && part[i] !== 1)) continue;
                const longest = Math.max(...part.filter((_, i) => i % 4 === 2));
                if (longest === 0) {
                  expect(await lib.sha.exists(key('sha', s))).toBe(0);
                  expect(twin.store.has(key('twin', s), now)).toBe(false);
                  continue;
                }
                const pttl = await lib.sha.pttl(key('sha', s));
                expect(pttl).toBeLessThanOrEqual(longest + GRACE);
                expect(pttl).toBeGreaterThan(longest + GRACE - 5000);
                expect(twin.store.has(key('twin', s), now + longest + GRACE)).toBe(true);
                expect(twin.store.has(key('twin', s), now + longest + GRACE + 1)).toBe(false);
              }
            }
          } else if (op.kind === 'refund') {
            const decisions = op.decisions.map((d) => ({ ...d, costs: d.costs ?? limits.map(() => 1) }));
            const rargv = [String(count), specsOf(limits), String(now), tzOf(limits), adopt, ...decisions.map((d) => d.costs.join(','))];
            const replies = await Promise.all(SIDES.map((side) => call(client(side), b.tiersRefundScript, decisions.map((d) => key(side, d.subject)), rargv)));
            expect(replies[1]).toEqual(replies[0]);
            expect(replies[2]).toEqual(replies[0]);
            const r = replies[0]!;
            expect(r).toHaveLength(1 + decisions.length * count * 2);
            for (const [d, dec] of decisions.entries()) {
              for (const [j, l] of limits.entries()) {
                const [remaining, reset] = await singleRefund(l, perLimit(dec.subject, j), dec.costs[j]!, now);
                expect([r[1 + (d * count + j) * 2], r[2 + (d * count + j) * 2]]).toEqual([remaining, reset]);
              }
            }
          } else {
            const subjects = [...new Set(op.decisions.map((d) => d.subject))];
            const rargv = [String(count), op.which.join(','), adopt];
            const replies = await Promise.all(SIDES.map((side) => call(client(side), b.tiersResetScript, subjects.map((s) => key(side, s)), rargv)));
            expect(replies[1]).toEqual(replies[0]);
            expect(replies[2]).toEqual(replies[0]);
            for (const s of subjects) for (const j of op.which) await lib.sha.del(perLimit(s, j - 1));
          }
          // Every subject's key: the same string through FCALL and EVALSHA; the twin holds the
          // states the fields decode to, and writes them as the same string.
          for (let s = 0; s < SUBJECTS; s++) {
            const fn = await lib.fn.get(key('fn', s));
            const sha = await lib.sha.get(key('sha', s));
            expect(fn).toEqual(sha);
            const t = twinValue(twin, key('twin', s), now);
            expect(t === undefined).toBe(sha === null);
            if (t && sha !== null) {
              expect(decodeTiers(sha, limits, now)).toEqual(t.states);
              expect(tiersValueString(t)).toBe(sha);
            }
            // The limits' own keys: moved into the subject's key (deleted) alike on every side.
            for (let j = 0; j < count; j++) {
              const held = await lib.sha.exists(own('sha', s, j));
              expect(await lib.sha.exists(own('fn', s, j))).toBe(held);
              expect(twin.store.has(own('twin', s, j), now)).toBe(held === 1);
              // Once the subject's key holds state, its limits' own keys are gone (one limit: the same key).
              if (sha !== null && count > 1) expect(held).toBe(0);
            }
          }
        }
      }),
      { numRuns: Number(process.env.TIERS_RUNS ?? 300) },
    );
  });

  it('a key given more than once in a call is decided again after the decisions before it (tiers ≡ multi, one call per decision)', async () => {
    const tag = `rep${run++}`;
    const limits: Limit[] = [
      { algo: 'gcra', limit: 2, periodMs: 60_000, burst: 3, offsetMs: 0 },
      { algo: 'quota', limit: 4, unit: 'day', offsetMs: 0 },
    ];
    const decisions = [{ costs: [1, 1] }, { costs: [2, 1] }, { costs: [1, 0] }, { costs: [0, 5] }, { costs: [1, 1] }, {}];
    const twin = new TwinClient();
    const argv = tiersArgv(limits, T0, decisions);
    const onFn = await call(lib.fn, b.tiersScript, decisions.map(() => `rl:{${tag}}:fn`), argv);
    expect(await call(twin, b.tiersScript, decisions.map(() => 'k'), argv)).toEqual(onFn);
    const viaMulti: number[] = [T0];
    for (const d of decisions) {
      const m = await call(lib.sha, b.multiScript, [`rl:{${tag}}:m:0`, `rl:{${tag}}:m:1`], [String(T0), '', ...limits.flatMap((l, j) => multiGroup(l, d.costs ? d.costs[j]! : 1, undefined))]);
      viaMulti.push(...m.slice(3));
    }
    expect(onFn).toEqual(viaMulti);
    // gcra: 3, 1 taken (2 left), 2 taken (0), denied, cost 0, denied, denied; quota alike.
    expect(onFn.filter((_, i) => i % 8 === 1)).toEqual([1, 1, 0, 1, 0, 0]);
  });
  it('a Functions library keeps each specs\' plan (limits, zones, windows) between calls: the clock back and forth across windows, periods and DST, zones on and off (FCALL ≡ EVALSHA ≡ twin)', async () => {
    // The same specs on every call, as a client sends them: the plan's windows and calendar
    // periods are kept from call to call and must follow the clock wherever it goes.
    const base: Limit[] = [
      { algo: 'fixed_window', limit: 3, periodMs: 60_000, offsetMs: 20_000 },
      { algo: 'sliding_window', limit: 4, periodMs: 3_600_000, offsetMs: 0 },
      { algo: 'quota', limit: 5, unit: 'day', offsetMs: 0, tz: true },
      { algo: 'quota', limit: 9, unit: 'week', offsetMs: 3_600_000 },
      { algo: 'gcra', limit: 2, periodMs: 60_000, burst: 3, offsetMs: 0 },
    ];
    const dst = Date.UTC(2026, 2, 29, 1);
    // Instants at and beside the edges: minutes (and their 20 s offset), hours, UTC and CET/CEST
    // days, weeks, the DST change, plus anything in five days.
    const edges = [T0, T0 + 20_000, T0 + 3_600_000, Date.UTC(2026, 2, 20, 23), Date.UTC(2026, 2, 21), Date.UTC(2026, 2, 22, 23), Date.UTC(2026, 2, 23, 1), dst, Date.UTC(2026, 2, 29, 22)];
    const at = fc.oneof(fc.constantFrom(...edges).chain((e) => fc.integer({ min: -2, max: 1 }).map((d) => e + d)), fc.integer({ min: T0 - DAY, max: T0 + 10 * DAY }));
    const step = fc.record({ now: at, zoned: fc.boolean(), peek: fc.boolean(), subjects: fc.array(fc.integer({ min: 0, max: 2 }), { minLength: 1, maxLength: 3 }) });
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 2, maxLength: 25 }), async (steps) => {
        const tag = `plan${run++}`;
        let now = T0;
        // The twin's store on the callers' clock too: its idle sweep must judge expiry by the
        // clock the calls pass, which steps back here, not by the latest one plus real time.
        const twin = new TwinClient({ clock: () => now, store: new MemoryStore({ clock: () => now }) });
        for (const st of steps) {
          now = st.now;
          // As above: a key the twin no longer holds on the callers' clock goes in Redis too, and
          // in the twin for good (a step back would find it live there again, not in Redis).
          for (const x of [0, 1, 2]) for (const z of [true, false]) {
            const k = `rl:{${tag}}:twin:${x}:${z}`;
            if (!twin.store.has(k, now)) {
              twin.store.delete(k);
              await lib.sha.del(`rl:{${tag}}:fn:${x}:${z}`, `rl:{${tag}}:sha:${x}:${z}`);
            }
          }
          const limits = base.map((l) => (l.tz ? { ...l, tz: st.zoned } : l));
          const def = st.peek ? b.tiersPeekScript : b.tiersScript;
          const argv = tiersArgv(limits, now, st.subjects.map(() => ({})));
          const replies = await Promise.all(SIDES.map((side) => call(side === 'fn' ? lib.fn : side === 'sha' ? lib.sha : twin, def, st.subjects.map((x) => `rl:{${tag}}:${side}:${x}:${st.zoned}`), argv)));
          expect(replies[0]).toEqual(replies[1]);
          expect(replies[2]).toEqual(replies[1]);
        }
      }),
      { numRuns: Number(process.env.TIERS_RUNS ?? 300) / 3 },
    );
  });
});

describe('tiers: the key and its expiry', () => {
  it('server clock: PXAT the end of the longest state; a denied decision writes nothing; deleted once every limit is full again', async () => {
    const key = `rl:{tiersclock${run++}}:s`;
    const limits: Limit[] = [
      { algo: 'gcra', limit: 1, periodMs: 4000, burst: 1, offsetMs: 0 },
      { algo: 'fixed_window', limit: 5, periodMs: 7000, offsetMs: 0 },
      { algo: 'sliding_window', limit: 5, periodMs: 600_000, offsetMs: 0 },
    ];
    const argv = (costs: number[]) => tiersArgv(limits, undefined, [{ costs }]);
    const r = await call(lib.fn, b.tiersScript, [key], argv([1, 1, 1]));
    expect([r[1], r[5], r[9]]).toEqual([1, 1, 1]);
    const resets = [r[3]!, r[7]!, r[11]!];
    expect(resets.every((x) => x > 0)).toBe(true);
    // PXAT on the server clock, exactly when the last state is back to full.
    expect(await lib.fn.call('PEXPIRETIME', key)).toBe(r[0]! + Math.max(...resets));
    const before = await lib.fn.get(key);
    // gcra is empty: denied, nothing written (value and expiry as they were).
    const denied = await call(lib.fn, b.tiersScript, [key], argv([1, 1, 1]));
    expect(denied[1]).toBe(0);
    expect(await lib.fn.get(key)).toBe(before);
    expect(await lib.fn.call('PEXPIRETIME', key)).toBe(r[0]! + Math.max(...resets));
    // Everything given back: no state left, the key is deleted.
    const back = await call(lib.fn, b.tiersRefundScript, [key], [String(limits.length), specsOf(limits), '', '', '', '1,1,1']);
    expect([back[2], back[4], back[6]]).toEqual([0, 0, 0]);
    expect(await lib.fn.exists(key)).toBe(0);
  });

  it("caller's clock: PX ttl + grace; a decision that finds every state stale (cost 0) deletes the key; the twin alike", async () => {
    const tag = `tiersstale${run++}`;
    const limits: Limit[] = [
      { algo: 'token_bucket', limit: 2, periodMs: 1000, burst: 2, offsetMs: 0 },
      { algo: 'sliding_window', limit: 3, periodMs: 5000, offsetMs: 0 },
    ];
    const twin = new TwinClient();
    const sides: [Client, string][] = [
      [lib.fn, `rl:{${tag}}:fn`],
      [lib.sha, `rl:{${tag}}:sha`],
      [twin, `rl:{${tag}}:twin`],
    ];
    for (const [c, k] of sides) {
      const r = await call(c, b.tiersScript, [k], tiersArgv(limits, T0, [{ costs: [1, 2] }]));
      expect(r.slice(1)).toEqual([1, 1, 500, 0, 1, 1, 10_000, 0]);
    }
    const pttl = await lib.sha.pttl(`rl:{${tag}}:sha`);
    expect(pttl).toBeLessThanOrEqual(10_000 + GRACE);
    expect(pttl).toBeGreaterThan(10_000 + GRACE - 5000);
    // 20 s later every state is stale (the key lives on in Redis: the grace); cost 0 admits and
    // rewrites every state empty, so the key goes.
    for (const [c, k] of sides) {
      const r = await call(c, b.tiersScript, [k], tiersArgv(limits, T0 + 20_000, [{ costs: [0, 0] }]));
      expect(r.slice(1)).toEqual([1, 2, 0, 0, 1, 3, 0, 0]);
    }
    expect(await lib.fn.exists(`rl:{${tag}}:fn`)).toBe(0);
    expect(await lib.sha.exists(`rl:{${tag}}:sha`)).toBe(0);
    expect(twin.store.has(`rl:{${tag}}:twin`, T0 + 20_000)).toBe(false);
  });
  it('tiers_refund that gives nothing back (costs 0, or limits without state) writes nothing: a stale state stays, and the expiry', async () => {
    const tag = `tiersnoop${run++}`;
    const limits: Limit[] = [
      { algo: 'gcra', limit: 1, periodMs: 1000, burst: 1, offsetMs: 0 },
      { algo: 'quota', limit: 5, unit: 'day', offsetMs: 0 },
      { algo: 'sliding_window', limit: 5, periodMs: 1000, offsetMs: 0 },
    ];
    const twin = new TwinClient({ clock: () => T0 });
    const sides: [Client, string][] = [
      [lib.fn, `rl:{${tag}}:fn`],
      [lib.sha, `rl:{${tag}}:sha`],
      [twin, `rl:{${tag}}:twin`],
    ];
    const values: string[] = [];
    for (const [c, k] of sides) {
      await call(c, b.tiersScript, [k], tiersArgv(limits, T0, [{ costs: [1, 1, 0] }]));
      // 5 s on, gcra's state is stale; the quota's is not; the sliding window never had one.
      const r = await call(c, b.tiersRefundScript, [k, k], [String(limits.length), specsOf(limits), String(T0 + 5000), '', '', '0,0,0', '0,0,3']);
      expect(r.slice(1)).toEqual([1, 0, 4, DAY - 10 * 3_600_000 - 5000, 5, 0, 1, 0, 4, DAY - 10 * 3_600_000 - 5000, 5, 0]);
      values.push(c === twin ? tiersValueString(twinValue(twin, k, T0 + 5000)!) : (await (c as typeof lib.fn).get(k))!);
    }
    expect(values[0]).toMatch(/^\d{7,}\|\d+:1\|$/); // the stale gcra state is still there
    expect(values[1]).toBe(values[0]);
    expect(values[2]).toBe(values[0]);
    expect(await lib.sha.pttl(`rl:{${tag}}:sha`)).toBeGreaterThan(DAY - 10 * 3_600_000 + GRACE - 5000);
  });
  it("a subject's key of one limit is that limit's own key: tiers reads what the single-limit script wrote, as the Lua reads the string (the twin alike)", async () => {
    const tag = `tiersone${run++}`;
    const twin = new TwinClient({ clock: () => T0 });
    const gcra1: Limit[] = [{ algo: 'gcra', limit: 3, periodMs: 60_000, burst: 3, offsetMs: 0 }];
    const got: unknown[][] = [];
    for (const [c, side] of [[lib.fn, 'fn'], [lib.sha, 'sha'], [twin, 'twin']] as [Client, string][]) {
      const kA = `rl:{${tag}}:${side}:a`;
      const kB = `rl:{${tag}}:${side}:b`;
      await b.gcra(c, { key: kA, limit: 3, periodMs: 60_000, burst: 3, cost: 2, nowMs: T0 });
      // A fixed window's "start:count" read as gcra's "ms:num": a time long past, so full.
      await b.fixedWindow(c, { key: kB, limit: 5, periodMs: 60_000, cost: 2, nowMs: T0 });
      const r = await call(c, b.tiersScript, [kA, kB], tiersArgv(gcra1, T0 + 1000, [{}, {}]));
      const value = (k: string) => (c === twin ? tiersValueString(twinValue(twin, k, T0 + 1000)!) : (c as typeof lib.fn).get(k));
      got.push([r, await value(kA), await value(kB), await call(c, b.tiersResetScript, [kA], ['1', '1', ''])]);
      if (c !== twin) expect(await (c as typeof lib.fn).exists(kA)).toBe(0);
      else expect(twin.store.has(kA, T0)).toBe(false);
    }
    expect(got[0]![0]).toEqual([T0 + 1000, 1, 0, 59_000, 0, 1, 2, 20_000, 0]);
    expect(got[1]).toEqual(got[0]);
    expect(got[2]).toEqual(got[0]);
  });
});

describe('tiers: a stale state cannot alias a later window', () => {
  it('fixed_window of 2^21 ms beside a day quota that keeps the key: denials for more than 2^22 ms, then the next day (tiers ≡ multi ≡ twin)', async () => {
    const tag = `alias${run++}`;
    const limits: Limit[] = [
      { algo: 'fixed_window', limit: 3, periodMs: 2 ** 21, offsetMs: 0 },
      { algo: 'sliding_window', limit: 3, periodMs: 2 ** 20, offsetMs: 0 },
      { algo: 'quota', limit: 3, unit: 'day', offsetMs: 0 },
    ];
    const twin = new TwinClient();
    const day = Date.UTC(2026, 2, 20);
    const times = [day + 1000, day + 2000, day + 3000];
    // Every 2^19 ms for 2^23 ms: the quota denies, the windows' states go stale (their tags come round).
    for (let t = day + 3000 + 2 ** 19; t < day + 3000 + 2 ** 23; t += 2 ** 19) times.push(t);
    times.push(day + DAY + 5000, day + DAY + 6000);
    for (const now of times) {
      const argv = tiersArgv(limits, now, [{}]);
      const onFn = await call(lib.fn, b.tiersScript, [`rl:{${tag}}:fn`], argv);
      expect(await call(twin, b.tiersScript, ['t'], argv)).toEqual(onFn);
      const m = await call(lib.sha, b.multiScript, limits.map((_, j) => `rl:{${tag}}:m:${j}`), [String(now), '', ...limits.flatMap((l) => multiGroup(l, 1, undefined))]);
      expect(onFn.slice(1)).toEqual(m.slice(3));
      // The quota keeps the key alive the whole day.
      if (now < day + DAY) expect(await lib.fn.exists(`rl:{${tag}}:fn`)).toBe(1);
    }
  });

  it('on the server clock tiers writes self-describing forms; a packed window state in the key WOULD alias (read as this window), the plain one does not (≡ multi)', async () => {
    const tag = `aliassrv${run++}`;
    const key = `rl:{${tag}}:s`;
    const limits: Limit[] = [
      { algo: 'fixed_window', limit: 3, periodMs: 2 ** 21, offsetMs: 0 },
      { algo: 'quota', limit: 3, unit: 'day', offsetMs: 0 },
    ];
    const serverNow = async () => {
      const [sec, usec] = (await lib.fn.time()).map(Number) as [number, number];
      return sec * 1000 + Math.floor(usec / 1000);
    };
    let now = await serverNow();
    // Far enough from the window's and the day's ends for the calls below to share them.
    const wait = Math.max(windowStart(now, 2 ** 21, 0) + 2 ** 21 - now, DAY - (now % DAY));
    if (wait < 5000) {
      await new Promise((resolve) => setTimeout(resolve, wait + 100));
      now = await serverNow();
    }
    const start = windowStart(now, 2 ** 21, 0);
    const dayStart = now - (now % DAY);
    // The fixed window's state of two windows ago (2^22 ms: the same tag), the quota exhausted today.
    const stalePacked = 3 * 2 ** 22 + ((start - 2 ** 22) % 2 ** 22);
    const stalePlain = `${start - 2 ** 22}:3`;
    const quotaState = `${dayStart}:3`;
    // multi over one key per limit: the fixed window's key expired with its window; the quota's holds 3.
    await lib.fn.set(`${key}:m1`, quotaState, 'PX', 600_000);
    const m = await call(lib.fn, b.multiScript, [`${key}:m0`, `${key}:m1`], ['', '', ...limits.flatMap((l) => multiGroup(l, 1, undefined))]);
    expect(m.slice(3, 7)).toEqual([1, 3, 0, 0]); // the fixed window alone admits: nothing in this window
    expect(m.slice(7, 9)).toEqual([0, 0]); // the quota is exhausted
    await lib.fn.set(key, `${stalePlain}|${quotaState}`, 'PX', 600_000);
    const plain = await call(lib.fn, b.tiersScript, [key], tiersArgv(limits, undefined, [{}]));
    expect(plain.slice(1, 7)).toEqual(m.slice(3, 9));
    // The same state packed (what fixed_window writes on its own key): its tag is this window's.
    await lib.fn.set(key, `${stalePacked}|${quotaState}`, 'PX', 600_000);
    const packed = await call(lib.fn, b.tiersScript, [key], tiersArgv(limits, undefined, [{}]));
    expect(packed.slice(1, 5)).toEqual([0, 0, start + 2 ** 21 - packed[0]!, start + 2 ** 21 - packed[0]!]);
    expect(packed.slice(1, 5)).not.toEqual(m.slice(3, 7));
  });

  it('a tiers call writes plain forms, and resets rl_plain_forms: the single-limit scripts of the same Functions library still pack theirs', async () => {
    const tag = `forms${run++}`;
    const key = `rl:{${tag}}:s`;
    const limits: Limit[] = [
      { algo: 'gcra', limit: 3, periodMs: 1000, burst: 5, offsetMs: 0 },
      { algo: 'token_bucket', limit: 3, periodMs: 1000, burst: 5, offsetMs: 0 },
      { algo: 'fixed_window', limit: 9, periodMs: 600_000, offsetMs: 0 },
      { algo: 'sliding_window', limit: 9, periodMs: 600_000, offsetMs: 0 },
    ];
    const single = async () => {
      // The same limits on keys of their own, server clock, through the same library.
      await b.fixedWindow(lib.fn, { key: `${key}:fw`, limit: 9, periodMs: 600_000 });
      await b.slidingWindow(lib.fn, { key: `${key}:sw`, limit: 9, periodMs: 600_000 });
      await b.gcra(lib.fn, { key: `${key}:g`, limit: 3, periodMs: 1000, burst: 5 });
      expect(await lib.fn.get(`${key}:fw`)).toMatch(/^\d+$/);
      expect(await lib.fn.get(`${key}:sw`)).toMatch(/^\d+$/);
      expect(await lib.fn.get(`${key}:g`)).toMatch(/^\d{7,}$/);
    };
    await call(lib.fn, b.tiersScript, [key], tiersArgv(limits, undefined, [{ costs: [5, 5, 1, 1] }]));
    await single();
    // Some time for the buckets to refill a fraction: the token bucket's content has one now.
    await new Promise((resolve) => setTimeout(resolve, 450));
    const r = await call(lib.fn, b.tiersScript, [key], tiersArgv(limits, undefined, [{ costs: [1, 1, 1, 1] }]));
    expect(r.filter((_, i) => i % 4 === 1)).toEqual([1, 1, 1, 1]);
    const fields = (await lib.fn.get(key))!.split('|');
    expect(fields).toHaveLength(4);
    expect(fields[0]).toMatch(/^\d{7,}$|^\d+:\d+$/); // gcra's forms are absolute either way
    expect(fields[1]).toMatch(/^-?\d+,\d+,\d+$/); // a fraction: the text form, not the 19-digit compact one
    expect(fields[2]).toMatch(/^\d+:\d+$/);
    expect(fields[3]).toMatch(/^\d+:\d+:\d+$/);
    await single();
    // The same token bucket on a key of its own packs its clock remainder (the compact form).
    await b.tokenBucket(lib.fn, { key: `${key}:tb`, limit: 3, periodMs: 1000, burst: 5, cost: 5 });
    await new Promise((resolve) => setTimeout(resolve, 450));
    await b.tokenBucket(lib.fn, { key: `${key}:tb`, limit: 3, periodMs: 1000, burst: 5, cost: 1 });
    expect(await lib.fn.get(`${key}:tb`)).toMatch(/^-\d{19}$/);
    // A tiers_refund that fails inside (a key that is not these limits' states) clears it too.
    await lib.fn.set(`${key}:bad`, 'a|b');
    await expect(call(lib.fn, b.tiersRefundScript, [`${key}:bad`], [String(limits.length), specsOf(limits), '', '', '', '1,1,1,1'])).rejects.toThrow(/WRONGSTATE/);
    await lib.fn.del(`${key}:fw`, `${key}:sw`, `${key}:g`);
    await single();
  });
});

describe('tiers: bad input and foreign keys', () => {
  const specs2 = 'gcra,5,60000,5,,;quota,10,,,0,day';
  /** [count, specs, tz_rules, decisions (costs, shares), the refusal's detail]: caught by the binding's check. */
  const checked: [number, string, string, [string, string][], RegExp][] = [
    [2, specs2, '', [['1', '']], /^costs\[1\] has 1 entries for 2 limit\(s\)$/],
    [2, specs2, '', [['1,1', ''], ['1,1,1', '']], /^costs\[2\] has 3 entries for 2 limit\(s\)$/],
    [2, specs2, '', [['1,x', '']], /^costs\[1\] must be 2 comma-separated decimal integers, got "1,x"$/],
    [2, specs2, '', [['-1,1', '']], /^costs\[1\] must be 2 comma-separated/],
    [2, specs2, '', [['1,,', '']], /^costs\[1\] must be 2 comma-separated/],
    [2, specs2, '', [['10000000000000000,1', '']], /^costs\[1\] must be 2 comma-separated/],
    [2, specs2, '', [['1000000000000001,1', '']], /^costs\[1\] entry 1 must be between 0 and 1000000000000000, got 1000000000000001$/],
    [2, specs2, '', [['1000000001,1', '']], /^cost\[1\] must be between 0 and 1000000000 for algo gcra, got 1000000001$/],
    [2, specs2, '', [['1,1', '1000001,0']], /^shares\[1\] entry 1 must be between 0 and 1000000, got 1000001$/],
    [2, specs2, '', [['1,1', '5']], /^shares\[1\] has 1 entries for 2 limit\(s\)$/],
    [2, specs2, '', [['', '0,x']], /^shares\[1\] must be 2 comma-separated/],
    [2, 'gcra,5,60000,5,,;sliding_log,5,60000,,,', '', [['', '']], /^specs\[2\] is sliding_log: a subject's key holds gcra, token_bucket, fixed_window, sliding_window and quota limits only$/],
    [1, 'block,,,,,', '', [['', '']], /^specs\[1\] is block: a subject's key holds/],
    [3, specs2, '', [['', '']], /^specs has 2 limit\(s\), count says 3$/],
    [2, 'gcra,5,60000,5,,;nope,1,1,,,', '', [['', '']], /^specs\[2\] must be algo,limit,period_ms,burst,offset_ms,unit with a known algo/],
    [1, 'fixed_window,5,1000,,1000,', '', [['', '']], /^offset_ms\[1\] must be between 0 and 999 for algo fixed_window, got 1000$/],
    [1, 'gcra,5,,5,,', '', [['', '']], /^period_ms\[1\] is required for algo gcra$/],
  ];
  /** Refused by the script's body (rl_multi_zones): the binding sends them. */
  const bodies: [number, string, string, [string, string][], RegExp][] = [
    [2, specs2, `${CET}|`, [['', '']], /^tz_rules\[1\] is for algo quota only, limit 1 is gcra$/],
    [2, specs2, CET, [['', '']], /^tz_rules has 1 entries for 2 limit\(s\) \(one per limit, empty for none\)$/],
    [2, specs2, '|nonsense', [['', '']], /^tz_rules entry 1 needs an integer offset in ms/],
  ];
  const argvOf = (count: number, specs: string, tz: string, ds: [string, string][]) => [String(count), specs, '1000000000000', tz, '', ...ds.flat()];
  const refusal = async (p: Promise<unknown>): Promise<string> =>
    p.then(
      () => 'no error',
      // Redis adds where the error was raised (" script: <name>, on @user_function:49."): not part of the reply's text.
      (e: unknown) => (e instanceof ScriptError ? e.redisMessage.replace(/ script: \S+, on @\S+\.$/, '') : e instanceof InvalidArgumentError ? `detail: ${e.detail}` : String(e)),
    );

  it('the binding (checks.tiersSpecs), the Lua (FCALL, EVALSHA) and the twin refuse the same input with the same BADARG, before any key is read', async () => {
    const key = `rl:{tiersbad${run++}}:s`;
    const twin = new TwinClient();
    for (const [defs, cases, inBinding] of [
      [[b.tiersScript, b.tiersPeekScript], checked, true],
      [[b.tiersScript, b.tiersPeekScript, b.tiersRefundScript], bodies, false],
    ] as const) {
      for (const [count, specs, tz, ds, detail] of cases) {
        for (const def of defs) {
          const argv = def === b.tiersRefundScript ? [String(count), specs, '1000000000000', tz, '', ...ds.map(() => '1,1')] : argvOf(count, specs, tz, ds);
          const keys = ds.map(() => key);
          const want = `BADARG redlimit ${def.name}: `;
          for (const c of [lib.fn, lib.sha, twin] as Client[]) {
            const got = await refusal(call(c, def, keys, argv));
            expect(got.startsWith(want), `${def.name} on ${c === twin ? 'twin' : 'redis'}: ${got}`).toBe(true);
            expect(got.slice(want.length)).toMatch(detail);
          }
          if (def === b.tiersRefundScript) continue;
          const bind = def === b.tiersScript ? b.tiers : b.tiersPeek;
          const got = await refusal(bind(lib.sha, { count, specs, nowMs: 1e12, tzRules: tz || undefined, decisions: ds.map(([costs, shares]) => ({ key, ...(costs ? { costs } : {}), ...(shares ? { shares } : {}) })) }));
          if (inBinding) expect(got).toMatch(new RegExp(`^detail: ${detail.source.slice(1)}`));
          else expect(got.slice(want.length)).toMatch(detail);
        }
      }
    }
    expect(await lib.fn.exists(key)).toBe(0);
  });

  it('a call refused between its check and its body leaves nothing for the next: a wrong count is refused on every call, through FCALL as through EVALSHA (a review found it accepted, and kept, after tiers_reserve refused its keys)', async () => {
    const specs = 'quota,100,,,0,day;gcra,10,60000,10,,';
    const key = `rl:{handover${run++}}:b`;
    // tiers_reserve's prologue checks the specs, then its body refuses a record key that is the state key.
    const refused = (p: Promise<unknown>) => p.then(() => 'accepted', (e: unknown) => (e instanceof ScriptError ? e.message : String(e)));
    for (const c of [lib.fn, lib.sha]) {
      expect(await refused(call(c, b.tiersReserveScript, [key, key], ['60000', '2', specs, '2000000', '', '', '1', '', '1', '']))).toMatch(/record key is also the state key/);
      for (const [argv, kind] of [
        [['1', specs, '2000000', '', '', '0', ''], b.tiersScript],
        [['1', specs, '2000001', '', '', '', ''], b.tiersScript],
        [['1', specs, '2000002', '', '', '', ''], b.tiersPeekScript],
        [['1', specs, '2000003', '', '', '1'], b.tiersRefundScript],
      ] as const) {
        expect(await refused(call(c, kind, [key], [...argv]))).toMatch(/BADARG .*specs has 2 limit\(s\), count says 1/);
      }
      expect(await lib.sha.exists(key)).toBe(0);
    }
  });

  it('tiers_refund needs its costs; tiers_reset positions 1..count', async () => {
    const key = `rl:{tiersbad${run++}}:s`;
    const twin = new TwinClient();
    const cases: [ScriptDef, string[], RegExp][] = [
      [b.tiersRefundScript, ['2', specs2, '', '', '', ''], /^BADARG redlimit tiers_refund: costs\[1\] \(ARGV\[6\]\) is required$/],
      [b.tiersRefundScript, ['2', specs2, '', '', '', '1'], /^BADARG redlimit tiers_refund: costs\[1\] has 1 entries for 2 limit\(s\)$/],
      [b.tiersResetScript, ['2', '0', ''], /^BADARG redlimit tiers_reset: limits must be positions 1\.\.2, comma-separated, got "0"$/],
      [b.tiersResetScript, ['2', '3', ''], /^BADARG redlimit tiers_reset: limits must be positions 1\.\.2/],
      [b.tiersResetScript, ['2', '1,,2', ''], /^BADARG redlimit tiers_reset: limits must be positions 1\.\.2, comma-separated, got "1,,2"$/],
      [b.tiersResetScript, ['2', '1,x', ''], /^BADARG redlimit tiers_reset: limits must be positions/],
      [b.tiersResetScript, ['2', '', ''], /^BADARG redlimit tiers_reset: limits \(ARGV\[2\]\) is required$/],
      // adopt: the limits' names, '+'-joined, as many as specs has limits.
      [b.tiersScript, ['2', specs2, '', '', 'm++d', '', ''], /^BADARG redlimit tiers: adopt must be the limits' names joined by \+, each of letters, digits, _ or -, got "m\+\+d"$/],
      [b.tiersPeekScript, ['2', specs2, '', '', 'm+d:x', '', ''], /^BADARG redlimit tiers_peek: adopt must be the limits' names joined by \+/],
      [b.tiersRefundScript, ['2', specs2, '', '', 'm+h+d', '1,1'], /^BADARG redlimit tiers_refund: adopt names 3 limit\(s\) for 2 spec\(s\)$/],
      [b.tiersResetScript, ['2', '1', 'm'], /^BADARG redlimit tiers_reset: adopt names 1 limit\(s\) for 2 spec\(s\)$/],
    ];
    for (const [def, argv, message] of cases) {
      for (const c of [lib.fn, lib.sha, twin] as Client[]) expect(await refusal(call(c, def, [key], argv))).toMatch(message);
    }
    // The binding refuses the same before the round trip.
    expect(await refusal(b.tiersRefund(lib.sha, { count: 2, specs: specs2, refunds: [{ key, costs: '1' }] }))).toBe('detail: costs[1] has 1 entries for 2 limit(s)');
    // tiers_node_batch (no declared key: each item names its own) refuses as tiers does.
    const node: [string[], RegExp][] = [
      [['2', specs2, '', '', '', key, '1', ''], /^BADARG redlimit tiers_node_batch: costs\[1\] has 1 entries for 2 limit\(s\)$/],
      [['2', specs2, '', '', 'm++d', key, '', ''], /^BADARG redlimit tiers_node_batch: adopt must be the limits' names joined by \+/],
      [['2', specs2, '', '', 'm', key, '', ''], /^BADARG redlimit tiers_node_batch: adopt names 1 limit\(s\) for 2 spec\(s\)$/],
      [['2', specs2, '', '', '', '', '', ''], /^BADARG redlimit tiers_node_batch: key\[1\] \(ARGV\[6\]\) is required$/],
      [['2', specs2, '', '', '', key, ''], /^BADARG redlimit tiers_node_batch: expects 5 fixed argument\(s\) then one or more groups of 3, got 7 argument\(s\)$/],
      [['2', 'gcra,5,60000,5,,;sliding_log,5,60000,,,', '', '', '', key, '', ''], /^BADARG redlimit tiers_node_batch: specs\[2\] is sliding_log/],
    ];
    for (const [argv, message] of node) {
      for (const c of [lib.fn, lib.sha, twin] as Client[]) expect(await refusal(call(c, b.tiersNodeBatchScript, [], argv))).toMatch(message);
    }
    expect(await refusal(b.tiersNodeBatch(lib.sha, { count: 2, specs: specs2, items: [{ key, costs: '1' }] }))).toBe('detail: costs[1] has 1 entries for 2 limit(s)');
    expect(await lib.fn.exists(key)).toBe(0);
  });

  it('tiers_reset publishes every key it was given on redlimit:invalidate (as reset does), after the change', async () => {
    const tag = `tierspub${run++}`;
    const keys = [`rl:{${tag}}:a`, `rl:{${tag}}:b`, `rl:{${tag}}:none`];
    const limits: Limit[] = [
      { algo: 'gcra', limit: 5, periodMs: 60_000, burst: 5, offsetMs: 0 },
      { algo: 'quota', limit: 5, unit: 'day', offsetMs: 0 },
    ];
    await call(lib.fn, b.tiersScript, keys.slice(0, 2), tiersArgv(limits, T0, [{}, { costs: [1, 0] }]));
    const sub = lib.fn.duplicate();
    const heard: string[] = [];
    sub.on('message', (channel: string, message: string) => {
      if (channel === 'redlimit:invalidate' && message.includes(tag)) heard.push(message);
    });
    await sub.subscribe('redlimit:invalidate');
    try {
      // a: both states dropped, the key goes; b: its quota kept nothing, gcra's state goes; none: no key.
      expect(await call(lib.fn, b.tiersResetScript, keys, ['2', '1,2', ''])).toEqual([3]);
      expect(await lib.fn.exists(...keys)).toBe(0);
      for (let i = 0; i < 50 && heard.length < 3; i++) await new Promise((resolve) => setTimeout(resolve, 10));
      expect(heard).toEqual(keys);
    } finally {
      await sub.quit();
    }
  });

  it('adopt: a limit\'s own key holding what its algorithm cannot read fails the decision on that limit (the first, in order) and names that key; another Redis type there is left alone; a reset refused on its key deletes no own key (FCALL ≡ EVALSHA ≡ twin; a review found the twin blaming another limit and deleting first)', async () => {
    const tag = `tiersadoptbad${run++}`;
    const limits: Limit[] = [
      { algo: 'gcra', limit: 5, periodMs: 60_000, burst: 5, offsetMs: 0 },
      { algo: 'token_bucket', limit: 5, periodMs: 60_000, burst: 5, offsetMs: 0 },
      { algo: 'quota', limit: 9, unit: 'day', offsetMs: 0 },
    ];
    const adopt = 'g+t+q';
    const twin = new TwinClient({ clock: () => T0 });
    const k = (side: string, s: string, name: string) => `rl:{${tag}${side}${s}}:${name}`;
    const sides = ['fn', 'sha', 'twin'] as const;
    const client = (side: (typeof sides)[number]) => (side === 'fn' ? lib.fn : side === 'sha' ? lib.sha : twin) as Client;
    // s1: bad gcra and token_bucket own keys (the first is at fault); s2: a bad quota own key;
    // s3: a hash where gcra's own key would be (left alone: read as full); s4: a hash as the subject's key.
    for (const side of ['fn', 'sha'] as const) {
      const c = client(side) as typeof lib.fn;
      await c.set(k(side, 's1', 'g'), 'zz');
      await c.set(k(side, 's1', 't'), 'zz');
      await c.set(k(side, 's2', 'g'), `${T0 + 30_000}000000`);
      await c.set(k(side, 's2', 'q'), 'zz');
      await c.hset(k(side, 's3', 'g'), 'f', 'v');
      await c.hset(k(side, 's4', adopt), 'f', 'v');
      await c.set(k(side, 's4', 't'), '-1');
    }
    const put = (s: string, name: string, v: unknown) => twin.store.set(k('twin', s, name), v as TwinValue, Infinity);
    const foreign = { kind: 'reservation', text: 'zz' };
    put('s1', 'g', foreign);
    put('s1', 't', foreign);
    put('s2', 'g', { kind: 'gcra', tatMs: T0 + 30_000, tatNum: 0 });
    put('s2', 'q', foreign);
    put('s3', 'g', { kind: 'fair_tenants', total: 0, weights: new Map(), usage: new Map() });
    put('s4', adopt, { kind: 'fair_tenants', total: 0, weights: new Map(), usage: new Map() });
    put('s4', 't', { kind: 'token_bucket', tokens: 1, frac: 0, tsMs: T0 });
    const argv = tiersArgv(limits, T0, [{}, {}, {}], adopt);
    const replies = await Promise.all(sides.map((side) => call(client(side), b.tiersScript, ['s1', 's2', 's3'].map((s) => k(side, s, adopt)), argv)));
    expect(replies[1]).toEqual(replies[0]);
    expect(replies[2]).toEqual(replies[0]);
    const part = (d: number) => replies[0]!.slice(1 + d * 12, 13 + d * 12);
    expect(part(0)).toEqual([-1, 2, 0, 0, -1, 0, 0, 0, -1, 0, 0, 0]); // gcra's own key, the first at fault
    expect(part(1)).toEqual([-1, 0, 0, 0, -1, 0, 0, 0, -1, 2, 0, 0]); // quota's
    expect(part(2).filter((_, i) => i % 4 === 0)).toEqual([1, 1, 1]); // the hash: full, and left there
    for (const side of ['fn', 'sha'] as const) {
      const c = client(side) as typeof lib.fn;
      expect(await c.exists(k(side, 's1', 'g'), k(side, 's1', 't'), k(side, 's2', 'g'), k(side, 's2', 'q'), k(side, 's3', 'g'))).toBe(5);
    }
    // A whole-call refusal names the own key at fault, as the Lua does.
    const refund = [String(limits.length), specsOf(limits), String(T0), '', adopt, '1,1,1'];
    const errors = await Promise.all(sides.map((side) => call(client(side), b.tiersRefundScript, [k(side, 's1', adopt)], refund).then(() => 'accepted', (e: unknown) => (e instanceof ScriptError ? e.redisMessage.replace(/ script: \S+, on @\S+\.$/, '') : String(e)))));
    expect(errors[0]).toBe(`WRONGSTATE redlimit gcra: key ${k('fn', 's1', 'g')} does not hold gcra state`);
    expect(errors[1]).toBe(errors[0]!.replace(`${tag}fn`, `${tag}sha`));
    expect(errors[2]).toBe(errors[0]!.replace(`${tag}fn`, `${tag}twin`));
    // tiers_reset of a key of another type: refused before any own key is deleted.
    const resets = await Promise.all(sides.map((side) => call(client(side), b.tiersResetScript, [k(side, 's4', adopt)], ['3', '1,2,3', adopt]).then(() => 'accepted', (e: unknown) => (e instanceof ScriptError ? e.redisMessage.split(' ')[0] : String(e)))));
    expect(resets).toEqual(['WRONGTYPE', 'WRONGTYPE', 'WRONGTYPE']);
    expect(await lib.fn.exists(k('fn', 's4', 't'), k('sha', 's4', 't'))).toBe(2);
    expect(twin.store.has(k('twin', 's4', 't'), T0)).toBe(true);
  });

  it('a key holding another type or a value that is not these limits\' states fails its decision alone (-1, WRONGTYPE 1 / WRONGSTATE 2 on the limit at fault), nothing of it written; the twin alike', async () => {
    const tag = `tiersforeign${run++}`;
    const limits: Limit[] = [
      { algo: 'gcra', limit: 5, periodMs: 60_000, burst: 5, offsetMs: 0 },
      { algo: 'sliding_window', limit: 5, periodMs: 60_000, offsetMs: 0 },
    ];
    const twin = new TwinClient({ clock: () => T0 });
    const k = (side: string, name: string) => `rl:{${tag}}:${side}:${name}`;
    for (const side of ['fn', 'sha']) {
      const c = side === 'fn' ? lib.fn : lib.sha;
      await c.hset(k(side, 'hash'), 'f', 'v');
      await c.zadd(k(side, 'zset'), 1, 'm');
      await c.set(k(side, 'text'), 'hello');
      await c.set(k(side, 'field'), '|bogus');
      await c.set(k(side, 'counter'), `${T0}:3`); // one field for two limits
    }
    // The same in the twin's store: a hash (fair share's kind), a sorted set, strings that are no states.
    const put = (name: string, v: unknown) => twin.store.set(k('twin', name), v as TwinValue, Infinity);
    put('hash', { kind: 'fair_tenants', total: 0, weights: new Map(), usage: new Map() });
    put('zset', { kind: 'sliding_log', entries: [{ ts: 1, cum: 1, cost: 1 }] });
    put('text', { kind: 'reservation', text: 'hello' });
    put('field', { kind: 'tiers', states: [undefined, { kind: 'reservation', text: 'bogus' }] });
    put('counter', { kind: 'counter', start: T0, count: 3 });
    const names = ['a', 'hash', 'b', 'zset', 'text', 'field', 'counter', 'a'];
    /** What each foreign key's decision answers: -1 on every limit, the code on the one at fault. */
    const markers: Record<string, number[]> = {
      hash: [-1, 1, 0, 0, -1, 0, 0, 0],
      zset: [-1, 1, 0, 0, -1, 0, 0, 0],
      text: [-1, 2, 0, 0, -1, 0, 0, 0],
      field: [-1, 0, 0, 0, -1, 2, 0, 0],
      counter: [-1, 2, 0, 0, -1, 0, 0, 0],
    };
    const argv = tiersArgv(limits, T0, names.map(() => ({ costs: [1, 1] })));
    const bySide: number[][] = [];
    for (const side of ['fn', 'sha', 'twin']) {
      const c = (side === 'fn' ? lib.fn : side === 'sha' ? lib.sha : twin) as Client;
      const r = await call(c, b.tiersScript, names.map((n) => k(side, n)), argv);
      bySide.push(r);
      names.forEach((n, d) => {
        const part = r.slice(1 + d * 8, 9 + d * 8);
        if (markers[n]) expect(part, `${side} ${n}`).toEqual(markers[n]);
        else expect([part[0], part[4]], `${side} ${n}`).toEqual([1, 1]);
      });
      // The good keys were decided around them: 'a' twice.
      expect([r[2], r[2 + 7 * 8]]).toEqual([4, 3]);
      // tiers_peek answers the same markers.
      const foreign = names.filter((n) => markers[n]);
      const p = await call(c, b.tiersPeekScript, foreign.map((n) => k(side, n)), tiersArgv(limits, T0, foreign.map(() => ({}))));
      expect(p.slice(1), side).toEqual(foreign.flatMap((n) => markers[n]!));
    }
    expect(bySide[1]).toEqual(bySide[0]);
    expect(bySide[2]).toEqual(bySide[0]);
    for (const side of ['fn', 'sha']) {
      const c = side === 'fn' ? lib.fn : lib.sha;
      expect(await c.type(k(side, 'hash'))).toBe('hash');
      expect(await c.type(k(side, 'zset'))).toBe('zset');
      expect(await c.get(k(side, 'text'))).toBe('hello');
      expect(await c.get(k(side, 'field'))).toBe('|bogus');
      expect(await c.get(k(side, 'counter'))).toBe(`${T0}:3`);
    }
    // tiers_refund and tiers_reset have no decision to fail alone: the call fails.
    for (const c of [lib.fn, lib.sha, twin] as Client[]) {
      const side = c === lib.fn ? 'fn' : c === lib.sha ? 'sha' : 'twin';
      const refund = (name: string) => refusal(call(c, b.tiersRefundScript, [k(side, name)], [String(limits.length), specsOf(limits), String(T0), '', '', '1,1']));
      expect(await refund('hash')).toMatch(/^WRONGTYPE /);
      expect(await refund('text')).toMatch(/^WRONGSTATE redlimit tiers_refund: key \S+ does not hold tiers_refund state$/);
      expect(await refund('field')).toMatch(/^WRONGSTATE redlimit sliding_window: key \S+ does not hold sliding_window state$/);
      expect(await refusal(call(c, b.tiersResetScript, [k(side, 'zset')], ['2', '1', '']))).toMatch(/^WRONGTYPE /);
      expect(await refusal(call(c, b.tiersResetScript, [k(side, 'counter')], ['2', '1', '']))).toMatch(/^WRONGSTATE redlimit tiers_reset: key \S+ does not hold tiers_reset state$/);
    }
  });
});

describe('tiers: the typed bindings', () => {
  it("give each key its count results, one per limit (@each ... per=count), for tiers, tiers_peek and tiers_refund", async () => {
    const specs = 'gcra,5,60000,5,,;quota,10,,,0,day';
    const [k1, k2] = [`bind:{b${++run}}:a`, `bind:{b${run}}:b`];
    const now = T0;
    const raw = (await runScript(lib.sha, b.tiersScript, [k1, k2, k1], ['2', specs, String(now), '', '', '1,3', '', '2,4', '', '1,1', ''])) as number[];
    await lib.sha.del(k1, k2);
    const typed = await b.tiers(lib.sha, { count: 2, specs, nowMs: now, decisions: [{ key: k1, costs: '1,3' }, { key: k2, costs: '2,4' }, { key: k1, costs: '1,1' }] });
    expect(typed.nowMs).toBe(now);
    expect(typed.decisions.map((d) => d.map((x) => [x.allowed, x.remaining, x.resetAfterMs, x.retryAfterMs]).flat()).flat()).toEqual(raw.slice(1));
    // The third decision is k1's second: its gcra and quota results, in that order.
    expect(typed.decisions[2]!.map((x) => x.remaining)).toEqual([3, 6]);
    const peek = await b.tiersPeek(lib.sha, { count: 2, specs, nowMs: now, decisions: [{ key: k2 }] });
    expect(peek.decisions[0]!.map((x) => x.remaining)).toEqual([3, 6]);
    const refund = await b.tiersRefund(lib.sha, { count: 2, specs, nowMs: now, refunds: [{ key: k1, costs: '0,4' }, { key: k2, costs: '2,0' }] });
    expect(refund.refunds.map((r) => r.map((x) => x.remaining))).toEqual([[3, 10], [5, 6]]);
  });
});
