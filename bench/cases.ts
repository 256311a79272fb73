import * as b from '../generated/index.js';
import type { CostCase } from './server-cost.js';

const KEYS = 1000;
const bucket = ['100', '1000', '20'];

/**
 * One case per consuming script, on the server clock, with realistic state (1000 keys, some
 * denials), and the ratio each should stay within (issue targets: 6x for single limits, 3x for
 * fixed_window, 10x for sliding_log and concurrency; issue 15: reserve <= 1.5x, commit <= 1.0x a
 * plain multi decision on the same limits, a priority class <= 1.1x the same call without one).
 */
export function benchCases(): CostCase[] {
  // multi over a mix: gcra, sliding_window, fixed_window (one hash tag per id).
  const multi = (n: number) => (i: number) => ({
    keys: Array.from({ length: n }, (_, j) => `bench:{m${i % KEYS}}:${j}`),
    // multi v3: now_ms, tz_rules, then groups: algo, limit, period_ms, cost, burst, offset_ms, unit, share_ppm, holder.
    argv: ['', ''].concat(...Array.from({ length: n }, (_, j) => [['gcra', 'sliding_window', 'fixed_window'][j % 3]!, '100', '60000', '1', '', '', '', '', ''])),
  });
  // An LLM gateway's pair (issue 15): RPM (cost 1) and TPM (cost: 500 estimated tokens), both gcra,
  // limits large enough that every call is admitted (a denied call writes nothing, so is cheaper).
  const rpmTpm = [
    ['gcra', '1000', '60000', '1', '', '', ''],
    ['gcra', '1000000', '60000', '500', '', '', ''],
  ];
  const pairKeys = (i: number) => [`bench:{p${i % KEYS}}:rpm`, `bench:{p${i % KEYS}}:tpm`];
  const pair = (share: string) => (i: number) => ({ keys: pairKeys(i), argv: ['', ''].concat(...rpmTpm.map((g) => [...g, share, ''])) });
  // reserve: a fresh reservation key per call (ids are never reused), ttl 60 s, the same two estimates.
  const reserve = (i: number) => ({ keys: [`bench:{p${i % KEYS}}:!rsv:${i}`, ...pairKeys(i)], argv: ['60000', '', ''].concat(...rpmTpm.map((g) => [...g, ''])) });
  return [
    { name: 'gcra', def: b.gcraScript, target: 6, call: (i) => ({ keys: [`bench:gcra:${i % KEYS}`], argv: bucket }) },
    { name: 'token_bucket', def: b.tokenBucketScript, target: 6, call: (i) => ({ keys: [`bench:tb:${i % KEYS}`], argv: bucket }) },
    { name: 'gcra_reserve', def: b.gcraReserveScript, target: 6, call: (i) => ({ keys: [`bench:gr:${i % KEYS}`], argv: [...bucket, '1', '50'] }) },
    { name: 'fixed_window', def: b.fixedWindowScript, target: 3, call: (i) => ({ keys: [`bench:fw:${i % KEYS}`], argv: ['100', '1000'] }) },
    { name: 'sliding_window', def: b.slidingWindowScript, target: 6, call: (i) => ({ keys: [`bench:sw:${i % KEYS}`], argv: ['100', '1000'] }) },
    { name: 'sliding_log', def: b.slidingLogScript, target: 10, call: (i) => ({ keys: [`bench:sl:${i % KEYS}`], argv: ['20', '1000'] }) },
    { name: 'quota', def: b.quotaScript, target: 6, call: (i) => ({ keys: [`bench:q:${i % KEYS}`], argv: ['1000000', 'day'] }) },
    { name: 'concurrency_acquire', def: b.concurrencyAcquireScript, target: 10, call: (i) => ({ keys: [`bench:c:${i % KEYS}`], argv: ['10', '50', `lease-${i}`] }) },
    { name: 'multi (1 limit)', def: b.multiScript, call: multi(1) },
    { name: 'multi (3 limits)', def: b.multiScript, call: multi(3) },
    // Issue 15: reserve and settle against a plain multi decision on the same RPM+TPM pair, and a
    // priority class (share_ppm 0.8) against no class, for one gcra and for the pair.
    // The same argument count with and without a class: more arguments alone cost the server more.
    { name: 'gcra no class', def: b.gcraScript, target: 6, call: (i) => ({ keys: [`bench:gs:${i % KEYS}`], argv: [...bucket, '1', '', ''] }) },
    { name: 'gcra share_ppm', def: b.gcraScript, target: 6, versus: { name: 'gcra no class', target: 1.1 }, call: (i) => ({ keys: [`bench:gs:${i % KEYS}`], argv: [...bucket, '1', '', '800000'] }) },
    { name: 'multi RPM+TPM', def: b.multiScript, call: pair('') },
    { name: 'multi RPM+TPM share', def: b.multiScript, versus: { name: 'multi RPM+TPM', target: 1.1 }, call: pair('800000') },
    { name: 'reserve RPM+TPM', def: b.reserveScript, versus: { name: 'multi RPM+TPM', target: 1.5 }, call: reserve },
    // commit: RPM's actual is its estimate (1: neither read nor written), TPM settles 350 of the 500 estimated.
    // Each settle needs its reservation first: `prepare` runs reserve before it, and the runner
    // subtracts what reserve alone costs.
    {
      name: 'settle commit',
      def: b.settleScript,
      versus: { name: 'multi RPM+TPM', target: 1.0 },
      prepare: { def: b.reserveScript, call: reserve },
      call: (i) => ({ keys: reserve(i).keys, argv: ['commit', 'debt', '', '1', '350'] }),
    },
    {
      name: 'settle cancel',
      def: b.settleScript,
      versus: { name: 'multi RPM+TPM' },
      prepare: { def: b.reserveScript, call: reserve },
      call: (i) => ({ keys: reserve(i).keys, argv: ['cancel', 'debt', '', '0', '0'] }),
    },
  ];
}
