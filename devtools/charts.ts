/**
 * `npm run charts`: one chart per algorithm (docs/charts/<algo>.svg), the same traffic through
 * each, decided by the in-memory twin on a simulated clock, and each chart's caption in README.md
 * written from the same simulation (the numbers a caption states are measured, not remembered);
 * `-- --check` fails when a committed chart or caption is not what this writes (CI runs it, like
 * codegen --check).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LimitSpec } from '../src/client/config.js';
import { chartSvg, simulate, type Simulation, type Traffic } from '../src/cli/simulate.js';

/** The most admitted in two adjacent bars: the bursts straddle a window boundary, one bar apart. */
const peakOfTwoBars = (s: Simulation) => Math.max(...s.allowed.slice(1).map((a, i) => a + s.allowed[i]!));
const times = (n: number, limit: number) => `${+(n / limit).toFixed(2)}×`;
const bar = (s: Simulation) => `${s.bucketMs / 1000} s`;

/** A caption's claim that the data does not bear out stops the build rather than ship. */
function claim(ok: boolean, what: string): void {
  if (!ok) throw new Error(`charts: the caption's claim no longer holds: ${what}`);
}

export const CHARTS: { file: string; limit: LimitSpec; traffic: Traffic; caption: (s: Simulation) => string }[] = [
  {
    file: 'fixed_window.svg',
    limit: { name: 'c', algo: 'fixed_window', limit: 20, periodMs: 10_000 },
    traffic: 'burst',
    caption: (s) => {
      const peak = peakOfTwoBars(s);
      claim(peak > 20, `fixed window admits more than its limit across a boundary (${peak})`);
      return `fixed window: both bursts pass, ${peak} admitted in two adjacent ${bar(s)} bars — ${times(peak, 20)} the limit of 20`;
    },
  },
  {
    file: 'sliding_window.svg',
    limit: { name: 'c', algo: 'sliding_window', limit: 20, periodMs: 10_000 },
    traffic: 'burst',
    caption: (s) => {
      const peak = peakOfTwoBars(s);
      const second = s.allowed.findIndex((a, i) => i > 0 && s.allowed[i - 1]! + s.denied[i - 1]! > 10);
      claim(second > 0 && s.denied[second]! > s.allowed[second]!, 'sliding window denies most of the second burst');
      return `sliding window: the second burst is mostly denied (${s.allowed[second]} of ${s.allowed[second]! + s.denied[second]!} admitted); at most ${peak} in two adjacent bars`;
    },
  },
  {
    file: 'sliding_log.svg',
    limit: { name: 'c', algo: 'sliding_log', limit: 20, periodMs: 10_000 },
    traffic: 'burst',
    caption: (s) => {
      const peak = peakOfTwoBars(s);
      claim(peak <= 20, `sliding log never admits more than its limit (${peak})`);
      return `sliding log: never more than the limit in any window (at most ${peak} of 20 in two adjacent bars)`;
    },
  },
  {
    file: 'gcra.svg',
    limit: { name: 'c', algo: 'gcra', limit: 20, periodMs: 10_000, burst: 10 },
    traffic: 'burst',
    caption: (s) => {
      const most = Math.max(...s.allowed);
      claim(most <= 10 + 2, `gcra admits at most its burst at once (${most})`);
      return `gcra: at most ${most} in a bar (the burst of 10, plus the refill), then the steady refill rate of ${s.ratePerBucket} per bar`;
    },
  },
  {
    file: 'token_bucket.svg',
    limit: { name: 'c', algo: 'token_bucket', limit: 20, periodMs: 10_000, burst: 10 },
    traffic: 'sawtooth',
    caption: (s) => {
      // Bars inside a denying stretch (the first bar of one may still spend what was left).
      const empty = s.allowed.filter((_, i) => i > 0 && s.denied[i]! > 0 && s.denied[i - 1]! > 0);
      claim(empty.length > 0 && empty.every((a) => a <= s.ratePerBucket), 'token bucket admits no more than the refill rate once empty');
      return `token bucket under sawtooth traffic: once the bucket is empty, at most ${Math.max(...empty)} admitted per bar — the refill rate`;
    },
  },
  {
    file: 'quota.svg',
    limit: { name: 'c', algo: 'quota', limit: 500, unit: 'day' },
    traffic: 'steady',
    caption: (s) => {
      const firstDenied = s.denied.findIndex((d) => d > 0);
      const hours = (firstDenied * s.bucketMs) / 3_600_000;
      const perDay = 86_400_000 / s.bucketMs;
      claim(s.allowed.slice(firstDenied, perDay).every((a) => a === 0), 'quota denies everything until the next day');
      return `quota: a daily budget of 500 spent by ${String(hours).padStart(2, '0')}:00, denied until midnight`;
    },
  },
];

const root = join(import.meta.dirname, '..');
const dir = join(root, 'docs', 'charts');
const readmePath = join(root, 'README.md');
const check = process.argv.includes('--check');
const stale: string[] = [];
mkdirSync(dir, { recursive: true });
let readme = readFileSync(readmePath, 'utf8');
for (const c of CHARTS) {
  const sim = await simulate({ limit: c.limit, traffic: c.traffic });
  const svg = chartSvg(sim);
  const path = join(dir, c.file);
  if (check) {
    if (!existsSync(path) || readFileSync(path, 'utf8') !== svg) stale.push(`docs/charts/${c.file}`);
  } else writeFileSync(path, svg);
  // The README shows each chart once, as ![caption](docs/charts/<file>).
  const image = new RegExp(`^!\\[[^\\]\\n]*\\]\\(docs/charts/${c.file.replace('.', '\\.')}\\)$`, 'm');
  const line = `![${c.caption(sim)}](docs/charts/${c.file})`;
  if (!image.test(readme)) throw new Error(`charts: README.md does not show docs/charts/${c.file}`);
  if (image.exec(readme)![0] !== line) {
    stale.push(`README.md caption of ${c.file}`);
    readme = readme.replace(image, () => line);
  }
}
if (check && stale.length > 0) {
  console.error(`charts are stale (run npm run charts): ${stale.join(', ')}`);
  process.exit(1);
}
if (!check && stale.length > 0) writeFileSync(readmePath, readme);
console.log(check ? 'charts: up to date' : `charts: wrote ${CHARTS.length} files to docs/charts${stale.length ? ' and the captions in README.md' : ''}`);
