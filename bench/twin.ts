import { apply, gcraEval } from '../src/twin/algorithms.js';
import { MemoryStore } from '../src/twin/store.js';

/** Twin GCRA decisions/s in this process, over `keys` distinct keys, and the store size after. */
export function twinGcraRate(calls: number, keys: number): { perSecond: number; storeSize: number } {
  const store = new MemoryStore();
  const names = Array.from({ length: keys }, (_, i) => `user:${i}`);
  let now = 1_764_000_000_000;
  let admitted = 0;
  const start = process.hrtime.bigint();
  for (let i = 0; i < calls; i++) {
    if ((i & 1023) === 0) now++;
    const e = gcraEval(store, names[i % keys]!, 100, 1000, 20, 1, now, false);
    if (e[0] === 1) {
      admitted++;
      apply(store, e[4]);
    }
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (admitted === 0) throw new Error('nothing admitted');
  return { perSecond: calls / seconds, storeSize: store.size };
}
