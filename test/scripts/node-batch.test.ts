import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import * as b from '../../generated/index.js';
import { InvalidArgumentError, ScriptError, TwinClient } from '../../src/index.js';
import { runScript } from '../../src/runtime/index.js';
import { functionsServerForFile } from '../support/redis.js';

/**
 * node_batch decides what multi_batch decides (batch with one limit), with each item's key in
 * ARGV and one declared key that only routes the call. On one server every key is local, so it
 * must answer and write exactly as they do: FCALL ≡ EVALSHA ≡ multi_batch ≡ batch (one limit) ≡
 * twin, on replies and on every key's state. (On a Redis Cluster: test/runtime/cluster-node-batch.)
 */
const lib = functionsServerForFile();

const T0 = Date.UTC(2026, 2, 20, 10);
type Algo = 'gcra' | 'token_bucket' | 'fixed_window' | 'sliding_window' | 'sliding_log' | 'quota';
const ALGOS: Algo[] = ['gcra', 'token_bucket', 'fixed_window', 'sliding_window', 'sliding_log', 'quota'];
let run = 0;

function spec(algo: Algo, limit: number): string {
  if (algo === 'quota') return `quota,${limit},,,0,day`;
  if (algo === 'gcra' || algo === 'token_bucket') return `${algo},${limit},60000,${limit + 1},,`;
  return `${algo},${limit},60000,,0,`;
}

describe('node_batch on one server', () => {
  it('answers and writes as multi_batch, batch (one limit) and the twin do, through FCALL and EVALSHA', async () => {
    const limit = fc.record({ algo: fc.constantFrom(...ALGOS), limit: fc.integer({ min: 1, max: 4 }) });
    const decision = fc.record({ subject: fc.integer({ min: 0, max: 4 }), costs: fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 3, maxLength: 3 }), share: fc.constantFrom(undefined, 500_000) });
    const call = fc.record({ decisions: fc.array(decision, { minLength: 1, maxLength: 24 }), advance: fc.integer({ min: 0, max: 30_000 }) });
    await fc.assert(
      fc.asyncProperty(fc.array(limit, { minLength: 1, maxLength: 3 }), fc.array(call, { minLength: 1, maxLength: 5 }), async (limits, calls) => {
        const tag = `nb${run++}`;
        const twin = new TwinClient();
        const count = limits.length;
        const specs = limits.map((l) => spec(l.algo, l.limit)).join(';');
        // node_batch's keys are in many slots (one hash tag per subject); multi_batch and batch
        // take one slot per call, so their side keeps every subject under one tag.
        const keyOf = (side: string, subject: number, j: number) => (side === 'mb' || side === 'b' ? `rl:{${tag}}:${side}:${subject}:${j}` : `rl:{${tag}-${subject}}:${side}:${j}`);
        const keys = new Set<string>();
        let now = T0;
        for (const c of calls) {
          now += c.advance;
          const items = (side: string) =>
            c.decisions.flatMap((d) => limits.map((_, j) => ({ key: keyOf(side, d.subject, j), cost: d.costs[j]!, ...(d.share ? { sharePpm: d.share } : {}) })));
          for (const d of c.decisions) for (let j = 0; j < count; j++) keys.add(`${d.subject}:${j}`);
          const node = (client: Parameters<typeof b.nodeBatch>[0], side: string) => {
            const list = items(side);
            return b.nodeBatch(client, { count, specs, nowMs: now, items: list });
          };
          const viaFn = await node(lib.fn, 'fn');
          const viaSha = await node(lib.sha, 'sha');
          const onTwin = await node(twin, 'twin');
          const multi = await b.multiBatch(lib.sha, { count, specs, nowMs: now, items: items('mb') });
          expect(viaFn).toEqual(viaSha);
          expect(onTwin).toEqual(viaFn);
          expect(viaFn.nowMs).toBe(now);
          expect(viaFn.items).toEqual(multi.items);
          if (count === 1) {
            const l = limits[0]!;
            const one = await b.batch(lib.sha, {
              algo: l.algo,
              limit: l.limit,
              ...(l.algo === 'quota' ? { unit: 'day' as const } : { periodMs: 60_000 }),
              ...(l.algo === 'gcra' || l.algo === 'token_bucket' ? { burst: l.limit + 1 } : {}),
              nowMs: now,
              decisions: items('b').map(({ key, cost, sharePpm }) => ({ key, cost, ...(sharePpm ? { sharePpm } : {}) })),
            });
            expect(viaFn.items).toEqual(one.decisions);
          }
        }
        for (const k of keys) {
          const [subject, j] = k.split(':').map(Number) as [number, number];
          const want = await lib.sha.get(keyOf('mb', subject, j)).catch(() => 'zset');
          expect(await lib.fn.get(keyOf('fn', subject, j)).catch(() => 'zset')).toEqual(want);
          expect(await lib.sha.get(keyOf('sha', subject, j)).catch(() => 'zset')).toEqual(want);
        }
      }),
      { numRuns: 50 },
    );
  });

  it('fails a decision alone when its key holds another type, and writes nothing of it', async () => {
    const tag = `nbwrong${run++}`;
    await lib.sha.sadd(`rl:{${tag}-b}:x`, 'member');
    const items = [
      { key: `rl:{${tag}-a}:x`, cost: 1 },
      { key: `rl:{${tag}-a}:y`, cost: 1 },
      { key: `rl:{${tag}-b}:y`, cost: 1 },
      { key: `rl:{${tag}-b}:x`, cost: 1 },
      { key: `rl:{${tag}-c}:x`, cost: 1 },
      { key: `rl:{${tag}-c}:y`, cost: 1 },
    ];
    const args = { count: 2, specs: 'gcra,5,60000,5,,;fixed_window,5,60000,,0,', items };
    const r = await b.nodeBatch(lib.fn, args);
    expect(r.items.map((x) => x.allowed)).toEqual([1, 1, -1, -1, 1, 1]);
    expect(r.items[3]!.remaining).toBe(1); // WRONGTYPE, on the item whose key it was
    expect(await lib.fn.exists(`rl:{${tag}-b}:y`)).toBe(0);
    expect(await b.nodeBatch(new TwinClient(), args).then((t) => t.items.map((x) => x.allowed))).toEqual([1, 1, 1, 1, 1, 1]);
  });

  it('refuses bad input before any key is touched, in TS and in Lua alike', async () => {
    const tag = `nbbad${run++}`;
    const key = `rl:{${tag}}:x`;
    // Caught by the binding before the round trip.
    await expect(b.nodeBatch(lib.sha, { count: 1, specs: 'gcra,5,60000,5,,', items: [] })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(b.nodeBatch(lib.sha, { count: 2, specs: 'gcra,5,60000,5,,;quota,5,,,0,day', items: [{ key, cost: 1 }] })).rejects.toBeInstanceOf(InvalidArgumentError);
    // Raw, as another language would send it: groups cut short, an empty key, a key twice in one decision.
    const fcall = (...argv: string[]) => lib.fn.fcall(`redlimit_node_batch_v${b.nodeBatchScript.version}`, 0, ...argv);
    const evalsha = (...argv: string[]) => lib.sha.evalsha(b.nodeBatchScript.sha1, 0, ...argv).catch(async (e: Error) => {
      if (!String(e.message).startsWith('NOSCRIPT')) throw e;
      return lib.sha.eval(b.nodeBatchScript.source, 0, ...argv);
    });
    const cases: [string[], RegExp][] = [
      [['1', 'gcra,5,60000,5,,', '', '', key, '1'], /^BADARG redlimit node_batch: expects 4 fixed argument\(s\) then one or more groups of 3, got 6/],
      [['1', 'gcra,5,60000,5,,', '', ''], /^BADARG redlimit node_batch: expects 4 fixed argument\(s\) then one or more groups of 3, got 4/],
      [['1', 'gcra,5,60000,5,,', '', '', '', '1', ''], /^BADARG redlimit node_batch: key\[1\] \(ARGV\[5\]\) is required/],
      [['2', 'gcra,5,60000,5,,;gcra,6,60000,6,,', '', '', key, '1', '', key, '1', ''], /^BADARG redlimit node_batch: key .* is given twice/],
      [['1', 'gcra,5,60000,5,,', '', '', key, '-1', ''], /^BADARG redlimit node_batch: cost\[1\] \(ARGV\[6\]\) must be between 0 and/],
    ];
    for (const [argv, message] of cases) {
      await expect(fcall(...argv)).rejects.toThrow(message);
      await expect(evalsha(...argv)).rejects.toThrow(message);
      const err = await runScript(new TwinClient(), b.nodeBatchScript, [], argv).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ScriptError);
      expect(String((err as Error).message)).toMatch(new RegExp(message.source.replace(/^\^/, 'Redis replied: ')));
    }
    expect(await lib.fn.exists(key)).toBe(0);
  });

  it('takes multi_batch\'s fixed arguments in the same places (the client builds both with one function)', () => {
    expect(b.nodeBatchScript.args.map((a) => [a.name, a.type, a.required])).toEqual(b.multiBatchScript.args.map((a) => [a.name, a.type, a.required]));
  });

  it('is declared allow-cross-slot-keys, as an EVAL script and in the Functions library', () => {
    expect(b.nodeBatchScript.source.startsWith('#!lua flags=allow-cross-slot-keys\n')).toBe(true);
    expect(b.nodeBatchScript.flags).toEqual(['allow-cross-slot-keys']);
    expect(b.functionsLibrary).toMatch(/function_name = 'redlimit_node_batch_v1', flags = \{ 'allow-cross-slot-keys' \}/);
    expect(b.batchScript.source.startsWith('#!')).toBe(false);
  });
});
