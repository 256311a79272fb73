/**
 * `npm run charts`: one chart per algorithm (docs/charts/<algo>.svg), the same traffic through
 * each, decided by the in-memory twin on a simulated clock; `-- --check` fails when a committed
 * chart is not what this writes (CI runs it, like codegen --check).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LimitSpec } from '../src/client/config.js';
import { chartSvg, simulate, type Traffic } from '../src/cli/simulate.js';

export const CHARTS: { file: string; limit: LimitSpec; traffic: Traffic }[] = [
  { file: 'fixed_window.svg', limit: { name: 'c', algo: 'fixed_window', limit: 20, periodMs: 10_000 }, traffic: 'burst' },
  { file: 'sliding_window.svg', limit: { name: 'c', algo: 'sliding_window', limit: 20, periodMs: 10_000 }, traffic: 'burst' },
  { file: 'sliding_log.svg', limit: { name: 'c', algo: 'sliding_log', limit: 20, periodMs: 10_000 }, traffic: 'burst' },
  { file: 'gcra.svg', limit: { name: 'c', algo: 'gcra', limit: 20, periodMs: 10_000, burst: 10 }, traffic: 'burst' },
  { file: 'token_bucket.svg', limit: { name: 'c', algo: 'token_bucket', limit: 20, periodMs: 10_000, burst: 10 }, traffic: 'sawtooth' },
  { file: 'quota.svg', limit: { name: 'c', algo: 'quota', limit: 500, unit: 'day' }, traffic: 'steady' },
];

const dir = join(import.meta.dirname, '..', 'docs', 'charts');
const check = process.argv.includes('--check');
const stale: string[] = [];
mkdirSync(dir, { recursive: true });
for (const c of CHARTS) {
  const svg = chartSvg(await simulate({ limit: c.limit, traffic: c.traffic }));
  const path = join(dir, c.file);
  if (check) {
    if (!existsSync(path) || readFileSync(path, 'utf8') !== svg) stale.push(`docs/charts/${c.file}`);
  } else writeFileSync(path, svg);
}
if (check && stale.length > 0) {
  console.error(`charts are stale (run npm run charts): ${stale.join(', ')}`);
  process.exit(1);
}
console.log(check ? 'charts: up to date' : `charts: wrote ${CHARTS.length} files to docs/charts`);
