import { twinGcraRate } from './twin.js';

/** Benches beyond the per-script server cost; each returns printable lines. */
export const benches: (() => Promise<string[]>)[] = [
  async () => {
    const runs = [0, 1, 2].map(() => twinGcraRate(5_000_000, 10_000));
    const best = Math.max(...runs.map((r) => r.perSecond));
    return [`in-memory twin, gcra, 10k keys, one process: ${Math.round(best).toLocaleString('en-US')} decisions/s (target >= 5,000,000 ${best >= 5e6 ? 'ok' : 'MISSED'})`];
  },
];
