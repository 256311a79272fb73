/** `simulate` and `bench`: an algorithm on a simulated clock, and decisions per second against a Redis. */
import { writeFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { algorithms } from '../../generated/index.js';
import { createRateLimiter } from '../client/limiter.js';
import { connect } from './connect.js';
import { algoOptions, int, limitFrom } from './options.js';
import { print, progress } from './output.js';
import { chartSvg, simulate, TRAFFIC, type Traffic } from './simulate.js';

/** Registers `simulate` and `bench` on the program. */
export function registerExperimentCommands(cli: Command): void {
  const simulateCommand = cli
    .command('simulate')
    .description('run a traffic shape through an algorithm on a simulated clock (the exact in-memory twin) and draw allowed vs denied')
    .requiredOption('--limit <n>', 'units per period', int('--limit', 1));
  algoOptions(simulateCommand)
    .addOption(new Option('--traffic <shape>', 'traffic shape').choices(TRAFFIC).default('steady'))
    .option('--duration <ms>', 'simulated time', int('--duration', 1))
    .option('--out <file>', 'write the chart here (SVG)')
    .option('--json', 'JSON output (per-bucket counts)')
    .action(async (o: Parameters<typeof limitFrom>[0] & { traffic: Traffic; duration?: number; out?: string; json?: boolean }) => {
      const sim = await simulate({ limit: limitFrom({ ...o, name: 'sim' }), traffic: o.traffic, durationMs: o.duration });
      if (o.out) writeFileSync(o.out, chartSvg(sim));
      const allowed = sim.allowed.reduce((s, v) => s + v, 0);
      const denied = sim.denied.reduce((s, v) => s + v, 0);
      print(!!o.json, { allowed, denied, bucketMs: sim.bucketMs, buckets: sim.allowed.map((a, i) => ({ allowed: a, denied: sim.denied[i] })) }, () => `${allowed} allowed, ${denied} denied${o.out ? `; chart: ${o.out}` : ''}`);
    });

  cli
    .command('bench')
    .description('decisions per second from this process against a Redis (one gcra limit, coalescing on and off)')
    .option('--url <url>', 'Redis URL', process.env.REDIS_URL ?? 'redis://127.0.0.1:6379')
    .option('--decisions <n>', 'decisions per run', int('--decisions', 1), 50_000)
    .option('--in-flight <n>', 'concurrent callers', int('--in-flight', 1), 256)
    .option('--json', 'JSON output')
    .action(async (o: { url: string; decisions: number; inFlight: number; json?: boolean }) => {
      const client = await connect(o.url, false);
      const results: Record<string, number> = {};
      const most = algorithms.gcra.params.find((p) => p.name === 'limit')!.max!; // never the limit that denies
      try {
        for (const coalesce of [true, false]) {
          const rl = createRateLimiter({ redis: client, prefix: `rlbench${process.pid}`, limits: { name: 'b', algo: 'gcra', limit: most, periodMs: 60_000 }, coalesce });
          await rl.ready();
          const label = coalesce ? 'coalesced' : 'one call per decision';
          const bar = progress(label);
          let next = 0;
          const t0 = performance.now();
          await Promise.all(
            Array.from({ length: o.inFlight }, async () => {
              while (next < o.decisions) {
                await rl.limit(`id-${next++ % 10_000}`);
                bar.tick(next, o.decisions);
              }
            }),
          );
          bar.end();
          results[label] = Math.round(o.decisions / ((performance.now() - t0) / 1000));
          if (!o.json) process.stdout.write(`${label}: ${results[label]} decisions/s\n`);
          await rl.close();
        }
        if (o.json) print(true, results, () => '');
      } finally {
        client.disconnect();
      }
    });
}
