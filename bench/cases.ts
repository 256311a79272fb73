import * as b from '../generated/index.js';
import type { CostCase } from './server-cost.js';

const KEYS = 1000;
const bucket = ['100', '1000', '20'];

/**
 * One case per consuming script, on the server clock, with realistic state (1000 keys, some
 * denials), and the ratio each should stay within (issue targets: 6x for single limits, 3x for
 * fixed_window, 10x for sliding_log and concurrency).
 */
export function benchCases(): CostCase[] {
  // multi over a mix: gcra, sliding_window, fixed_window (one hash tag per id).
  const multi = (n: number) => (i: number) => ({
    keys: Array.from({ length: n }, (_, j) => `bench:{m${i % KEYS}}:${j}`),
    argv: [''].concat(...Array.from({ length: n }, (_, j) => [['gcra', 'sliding_window', 'fixed_window'][j % 3]!, '100', '60000', '1', '', '', ''])),
  });
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
  ];
}
