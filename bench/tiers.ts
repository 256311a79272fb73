/**
 * `npx tsx bench/tiers.ts`: issue 17's three tiers (a minute of gcra, an hour of sliding window,
 * a day of quota) against one gcra limit, in Redis instructions per decision (callgrind, see
 * bench/callgrind.ts), for both key layouts: one key per limit (`multi` alone, `multi_batch`
 * coalesced) and one key per subject holding every limit (`tiers`, alone and 64 keys a call).
 *
 * Traffic: a pool of POOL subject ids; each decision is on an id drawn from the pool by a seeded
 * PRNG; the limits are bench:compare's (LIMIT a minute, ×10 an hour, ×100 a day), high enough
 * that every decision is admitted. Every id of the pool is decided once first (the warm-up, in
 * pool order, the same in both runs), so the hour and day keys exist when the measured
 * decisions come (a minute of gcra at 1e6/min refills a unit in 0.06 ms: its state is always
 * gone again by the next visit, as on bench:compare's traffic). Per decision = (count after warm-up
 * + 3N decisions - count after warm-up + N decisions) / 2N, the first N of the same id sequence.
 * On the server clock (now_ms ''), the Functions library through FCALL (what the client uses),
 * and EVALSHA (BENCH_TRANSPORT=fcall,evalsha picks; default both). ARGV are built by the
 * client's own code (src/client/plan.ts, src/client/shape.ts), as the limiter and the coalescer
 * send them: `tiers` as layout 'subject' sends it (count, specs, now_ms, tz_rules, then per key
 * costs '1,1,1' and shares ''), on the key `rl:{id}:m+h+d`.
 *
 * Then memory per subject on a plain redis-server (no callgrind): MEMORY USAGE summed over a
 * subject's keys, averaged over MEM_IDS subjects after one admitted decision each, and
 * INFO's used_memory delta over those subjects divided by their number.
 *
 * BENCH_DECISIONS (N, default 3072), BENCH_POOL (default 2000), BENCH_CELLS (comma list of cell
 * numbers), BENCH_LIBRARY (a Functions library file to measure instead of the generated one),
 * BENCH_SECTIONS (instructions,memory; `profile`: for each of BENCH_CELLS, one
 * callgrind run whose counters are zeroed after the warm-up, so its file holds N decisions
 * alone; its top functions by inclusive count are printed, the file kept for callgrind_annotate).
 */
import { Redis } from 'ioredis';
import { functionsLibrary, replyLayouts, tiersScript } from '../generated/index.js';
import type { ScriptDef } from '../src/runtime/index.js';
import type { LimitSpec } from '../src/client/config.js';
import { compileLimit } from '../src/client/plan.js';
import { Shape } from '../src/client/shape.js';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, redisServerBinary, startLocalRedis, waitForPing } from '../devtools/local-redis.js';
import { instructionsOf } from './callgrind.js';

const N = Number(process.env.BENCH_DECISIONS ?? 3072);
const POOL = Number(process.env.BENCH_POOL ?? 2000);
const MEM_IDS = Number(process.env.BENCH_MEM_IDS ?? 2000);
const PER_BATCH = 64;
const IN_FLIGHT = 64;
const SEED = 0x2545f491;
const TRANSPORTS = (process.env.BENCH_TRANSPORT ?? 'fcall,evalsha').split(',') as ('fcall' | 'evalsha')[];
const SECTIONS = new Set((process.env.BENCH_SECTIONS ?? 'instructions,memory').split(','));
const PREFIX = 'rl';
/** BENCH_LIBRARY: a Functions library file to load instead of generated/functions/redlimit.lua (a variant under test; FCALL only). */
const LIBRARY = process.env.BENCH_LIBRARY ? readFileSync(process.env.BENCH_LIBRARY, 'utf8') : functionsLibrary;

// bench:compare's limits (its "3 tiers" contender).
const LIMIT = 1_000_000;
const PERIOD_MS = 60_000;
const TIERS: LimitSpec[] = [
  { name: 'm', algo: 'gcra', limit: LIMIT, periodMs: PERIOD_MS },
  { name: 'h', algo: 'sliding_window', limit: LIMIT * 10, periodMs: PERIOD_MS * 60 },
  { name: 'd', algo: 'quota', limit: LIMIT * 100, unit: 'day' },
] as LimitSpec[];

/** The six cells for these three limits (the first one alone in cells 1 and 2). */
function makeCells(specs: LimitSpec[]): Cell[] {
  const onePlans = [compileLimit(specs[0]!, 1)];
  const threePlans = specs.map((l) => compileLimit(l, 1));
  const one = new Shape(onePlans, false);
  const three = new Shape(threePlans, false);
  const oneKeys = perLimitKeys(onePlans);
  const threeKeys = perLimitKeys(threePlans);
  // Layout 'subject': the client's own Shape (src/client/shape.ts) builds tiers' ARGV, as it sends them.
  const subject = new Shape(threePlans, false, { now: null }, true);
  const subjectKey = (id: string) => [`${PREFIX}:{${id}}:${threePlans.map((p) => p.name).join('+')}`];
  if (subject.batch!.def !== tiersScript) throw new Error("layout 'subject' should coalesce as tiers");
  return [
    { n: 1, name: 'one gcra, alone (gcra)', per: 1, limits: 1, keysOf: oneKeys, call: alone(one, oneKeys) },
    { n: 2, name: 'one gcra, coalesced (batch x64)', per: PER_BATCH, limits: 1, keysOf: oneKeys, call: coalesced(one, oneKeys) },
    { n: 3, name: '3 tiers alone, per-limit keys (multi)', per: 1, limits: 3, keysOf: threeKeys, call: alone(three, threeKeys), versus: 1 },
    { n: 4, name: '3 tiers coalesced, per-limit keys (multi_batch x64)', per: PER_BATCH, limits: 3, keysOf: threeKeys, call: coalesced(three, threeKeys), versus: 2 },
    { n: 5, name: '3 tiers alone, one key (tiers x1)', per: 1, limits: 3, keysOf: subjectKey, call: alone(subject, subjectKey), versus: 1 },
    { n: 6, name: '3 tiers coalesced, one key (tiers x64)', per: PER_BATCH, limits: 3, keysOf: subjectKey, call: coalesced(subject, subjectKey), versus: 2 },
    // What adopt costs where it reads: a subject's key that holds nothing (a new subject each
    // decision), with the limits' own keys to look for (adopt, as the client sends it) and without.
    { n: 7, name: '3 tiers alone, one key, new subjects (adopt)', per: 1, limits: 3, keysOf: freshKey, call: alone(subject, freshKey), versus: 8 },
    { n: 8, name: '3 tiers alone, one key, new subjects (adopt "")', per: 1, limits: 3, keysOf: freshKey, call: withoutAdopt(alone(subject, freshKey)) },
  ];
}

/** A key no decision had: the id with a serial of its own (cells 7, 8). */
let fresh = 0;
const freshKey = (id: string) => [`${PREFIX}:{${id}#${fresh++}}:m+h+d`];

/** A tiers call without adopt (its ARGV position after tz_rules: ''). */
function withoutAdopt(call: (ids: readonly string[]) => Call): (ids: readonly string[]) => Call {
  const at = tiersScript.args.findIndex((a) => a.name === 'adopt');
  return (ids) => {
    const c = call(ids);
    const argv = c.argv.slice();
    argv[at] = '';
    return { ...c, argv };
  };
}

const perLimitKeys = (plans: readonly { name: string }[]) => (id: string) => plans.map((p) => `${PREFIX}:{${id}}:${p.name}`);

/** One script call: its script, keys and ARGV. */
interface Call {
  def: ScriptDef;
  keys: string[];
  argv: string[];
}

interface Cell {
  n: number;
  name: string;
  /** Decisions per call. */
  per: number;
  /** Limits per decision (results per decision in the reply). */
  limits: number;
  /** Keys of one subject. */
  keysOf: (id: string) => string[];
  /** The call deciding these ids (`per` of them, or fewer at the end of a run). */
  call: (ids: readonly string[]) => Call;
  /** The cell whose count this one is a ratio to. */
  versus?: number;
}

/** A decision alone: the limiter's own call (shape.consume: gcra for one limit, multi for several). */
function alone(shape: Shape, keysOf: (id: string) => string[]) {
  const costs = Array.from({ length: shape.count }, () => 1);
  return (ids: readonly string[]): Call => {
    const c = shape.consume(costs);
    return { def: c.def, keys: keysOf(ids[0]!), argv: c.argv };
  };
}

/**
 * Decisions coalesced as the coalescer sends them: the batch script's fixed ARGV, then per key
 * its group: the cost as Shape.costStrings gives it ('1'; tiers: the key's costs joined, '1,1,1'),
 * the share '' (no class), every other field ''.
 */
function coalesced(shape: Shape, keysOf: (id: string) => string[]) {
  const batch = shape.batch!;
  const fields = batch.def.each?.args.map((a) => a.name) ?? ['cost'];
  const cost = fields.indexOf(fields.includes('cost') ? 'cost' : 'costs');
  const costs = shape.costStrings(Array.from({ length: shape.count }, () => 1));
  return (ids: readonly string[]): Call => {
    const keys: string[] = [];
    const argv = batch.argv().slice();
    for (const id of ids) {
      const own = keysOf(id);
      for (let j = 0; j < own.length; j++) {
        keys.push(own[j]!);
        for (let g = 0; g < fields.length; g++) argv.push(g === cost ? costs[j]! : '');
      }
    }
    return { def: batch.def, keys, argv };
  };
}

const CELLS = makeCells(TIERS);
/**
 * Memory: the same limits but the minute's gcra at 1 a minute, so that its state (the same
 * int-encoded packed tat as at 1e6/min) lives 60 s and is there to be measured (at 1e6/min it
 * expires 1 ms after the decision).
 */
const MEMORY_TIERS: LimitSpec[] = [{ ...TIERS[0]!, limit: 1 } as LimitSpec, TIERS[1]!, TIERS[2]!];

// --- traffic --------------------------------------------------------------------------------------

const pool = Array.from({ length: POOL }, (_, i) => `user-${i}`);

/** The first `n` ids of the seeded sequence (xorshift32 over the pool). */
function draws(n: number): string[] {
  let x = SEED >>> 0;
  return Array.from({ length: n }, () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return pool[(x >>> 0) % POOL]!;
  });
}

type Send = (c: Call) => Promise<unknown>;

async function transport(redis: Redis, kind: 'fcall' | 'evalsha'): Promise<Send> {
  if (kind === 'fcall') {
    await redis.call('FUNCTION', 'LOAD', 'REPLACE', LIBRARY);
    return (c) => redis.call('FCALL', `redlimit_${c.def.name}_v${c.def.version}`, c.keys.length, ...c.keys, ...c.argv);
  }
  const shas = new Map<ScriptDef, string>();
  return async (c) => {
    let sha = shas.get(c.def);
    if (!sha) {
      sha = (await redis.script('LOAD', c.def.source)) as string;
      shas.set(c.def, sha);
    }
    return redis.evalsha(sha, c.keys.length, ...c.keys, ...c.argv);
  };
}

/** Decides `ids` in calls of `per`, IN_FLIGHT calls pipelined; returns how many decisions were admitted (every limit). */
async function decideAll(send: Send, cell: Cell, ids: readonly string[]): Promise<{ admitted: number; decisions: number }> {
  const calls: string[][] = [];
  for (let at = 0; at < ids.length; at += cell.per) calls.push(ids.slice(at, at + cell.per) as string[]);
  let admitted = 0;
  for (let at = 0; at < calls.length; at += IN_FLIGHT) {
    const replies = await Promise.all(calls.slice(at, at + IN_FLIGHT).map((part) => send(cell.call(part))));
    for (let r = 0; r < replies.length; r++) {
      const reply = replies[r] as number[];
      const part = calls[at + r]!;
      admitted += countAdmitted(cell, reply, part.length);
    }
  }
  return { admitted, decisions: ids.length };
}

/** Admitted decisions in a reply: every limit's allowed = 1. Reply layouts from the script headers (generated replyLayouts). */
function countAdmitted(cell: Cell, reply: number[], decisions: number): number {
  const def = cell.call(['x']).def;
  const layout = replyLayouts[def.name];
  const limits = cell.limits;
  const first = layout?.offset ?? 0;
  const stride = layout?.stride ?? 4;
  let ok = 0;
  for (let d = 0; d < decisions; d++) {
    let all = true;
    for (let j = 0; j < limits; j++) if (reply[first + (d * limits + j) * stride] !== 1) all = false;
    if (all) ok++;
  }
  return ok;
}

// --- instructions ---------------------------------------------------------------------------------

const checks: string[] = [];

async function countAfter(cell: Cell, kind: 'fcall' | 'evalsha', decisions: number): Promise<number> {
  return instructionsOf(async (redis) => {
    const send = await transport(redis, kind);
    const warm = await decideAll(send, cell, pool);
    const run = await decideAll(send, cell, draws(decisions));
    const keys = Number(await redis.dbsize());
    checks.push(`cell ${cell.n} ${kind} ${decisions}: warm-up ${warm.admitted}/${warm.decisions} admitted, run ${run.admitted}/${run.decisions} admitted, ${keys} keys`);
    if (warm.admitted !== warm.decisions || run.admitted !== run.decisions) throw new Error(`cell ${cell.n}: not every decision admitted (${checks.at(-1)})`);
  });
}

async function perDecision(cell: Cell, kind: 'fcall' | 'evalsha'): Promise<number> {
  const few = await countAfter(cell, kind, N);
  const many = await countAfter(cell, kind, 3 * N);
  return (many - few) / (2 * N);
}

function fmtInt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

async function instructions(): Promise<void> {
  const wanted = process.env.BENCH_CELLS ? new Set(process.env.BENCH_CELLS.split(',').map(Number)) : null;
  const cells = CELLS.filter((c) => !wanted || wanted.has(c.n) || CELLS.some((o) => wanted.has(o.n) && o.versus === c.n));
  console.log(`## Redis instructions per decision (callgrind, ${process.env.BENCH_CALLGRIND_SCOPE === 'server' ? 'whole server' : 'processInputBuffer'}; ${N} and ${3 * N} decisions after a warm-up of ${POOL} ids, ids drawn from the pool)`);
  console.log(`limits: gcra ${LIMIT}/${PERIOD_MS} ms | sliding_window ${LIMIT * 10}/${PERIOD_MS * 60} ms | quota ${LIMIT * 100}/day; server clock`);
  for (const kind of TRANSPORTS) {
    const counts = new Map<number, number>();
    console.log(`\n### ${kind.toUpperCase()}`);
    console.log('cell'.padEnd(56) + 'instr/decision'.padStart(16) + 'ratio'.padStart(9) + '  to');
    for (const c of cells) {
      const v = await perDecision(c, kind);
      counts.set(c.n, v);
      const base = c.versus === undefined ? undefined : counts.get(c.versus);
      const ratio = base === undefined ? '' : `${(v / base).toFixed(2)}x`;
      const to = c.versus === undefined ? '' : `  cell ${c.versus}`;
      console.log(`${c.n}. ${c.name}`.padEnd(56) + fmtInt(v).padStart(16) + ratio.padStart(9) + to);
    }
    for (const [a, b] of [[5, 3], [6, 4]] as const) {
      if (counts.has(a) && counts.has(b)) console.log(`one key / per-limit keys, cell ${a} / cell ${b}: ${(counts.get(a)! / counts.get(b)!).toFixed(3)}x`);
    }
  }
  console.log('\nchecks:');
  for (const line of checks) console.log(`  ${line}`);
}

// --- memory ---------------------------------------------------------------------------------------

async function memory(): Promise<void> {
  const own = await startLocalRedis();
  const redis = new Redis(own.url);
  try {
    const ids = Array.from({ length: MEM_IDS }, (_, i) => `user-${i}`);
    const send = await transport(redis, 'fcall');
    const settle = () => new Promise((r) => setTimeout(r, 1500));
    const usedMemory = async () => Number(/^used_memory:(\d+)/m.exec((await redis.info('memory')) as string)![1]);
    console.log(`\n## Memory per subject (${MEM_IDS} subjects, one admitted decision each, alone; the minute's gcra at 1/min so its state lives 60 s; MEMORY USAGE SAMPLES 0 summed over a subject's keys)`);
    console.log('layout'.padEnd(44) + 'keys'.padStart(6) + 'MEMORY USAGE'.padStart(14) + 'used_memory delta'.padStart(19));
    const cells = makeCells(MEMORY_TIERS);
    for (const cell of [cells[0]!, cells[2]!, cells[4]!]) {
      await redis.flushall();
      await send(cell.call([ids[0]!])); // scripts and library warm, then the key dropped
      await redis.flushall();
      await settle();
      const before = await usedMemory();
      const r = await decideAll(send, cell, ids);
      // The keyspace's hash tables grow by incremental rehash (finished by serverCron's active
      // rehash): until it is done both tables are allocated, which read as ~50 B per key more.
      await settle();
      const after = await usedMemory();
      if (r.admitted !== ids.length) throw new Error(`memory: ${cell.name}: ${r.admitted}/${ids.length} admitted`);
      let bytes = 0;
      let keys = 0;
      for (const id of ids) {
        for (const k of cell.keysOf(id)) {
          const b = await redis.memory('USAGE', k, 'SAMPLES', '0');
          if (b !== null) {
            bytes += Number(b);
            keys++;
          }
        }
      }
      const label = cell.n === 1 ? 'one gcra key' : cell.n === 3 ? '3 per-limit keys (m, h, d)' : 'one tiers key (m+h+d)';
      console.log(label.padEnd(44) + (keys / ids.length).toFixed(2).padStart(6) + `${(bytes / ids.length).toFixed(1)} B`.padStart(14) + `${((after - before) / ids.length).toFixed(1)} B`.padStart(19));
    }
    const sample = ids[7]!;
    console.log('\nvalues of one subject:');
    for (const cell of [cells[2]!, cells[4]!]) {
      await redis.flushall();
      await send(cell.call([sample]));
      for (const k of cell.keysOf(sample)) console.log(`  ${k} = ${JSON.stringify(await redis.get(k))} (${await redis.object('ENCODING', k)}, pttl ${await redis.pttl(k)})`);
    }
  } finally {
    redis.disconnect();
    await own.stop();
  }
}

// --- profile -------------------------------------------------------------------------------------

async function profile(): Promise<void> {
  const wanted = (process.env.BENCH_CELLS ?? '4,6').split(',').map(Number);
  const kind = TRANSPORTS[0]!;
  const dir = mkdtempSync(join(tmpdir(), 'redlimit-tiers-profile-'));
  for (const cell of CELLS.filter((c) => wanted.includes(c.n))) {
    const out = join(dir, `cell${cell.n}-${kind}.out`);
    const port = await freePort();
    const child = spawn('valgrind', ['--tool=callgrind', `--callgrind-out-file=${out}`, '--toggle-collect=processInputBuffer', redisServerBinary()!, '--port', String(port), '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    await waitForPing(port, 60_000);
    const redis = new Redis(port, { autoResendUnfulfilledCommands: false });
    redis.on('error', () => {});
    const send = await transport(redis, kind);
    await decideAll(send, cell, pool);
    spawnSync('callgrind_control', ['-z', String(child.pid)]);
    await decideAll(send, cell, draws(N));
    await redis.call('SHUTDOWN', 'NOSAVE').catch(() => {});
    redis.disconnect();
    await exited;
    const total = Number(/^summary: (\d+)/m.exec(spawnSync('sh', ['-c', `cat ${out}*`], { encoding: 'utf8' }).stdout)?.[1] ?? NaN);
    console.log(`\n## Profile, cell ${cell.n} (${cell.name}), ${kind}: ${N} decisions after the warm-up, ${fmtInt(total / N)} instructions per decision; ${out}`);
    for (const inclusive of ['no', 'yes']) {
      console.log(inclusive === 'no' ? 'self instructions per decision, top functions:' : 'inclusive instructions per decision, top functions:');
      const annotated = spawnSync('callgrind_annotate', [`--inclusive=${inclusive}`, '--threshold=99', out], { encoding: 'utf8', maxBuffer: 64 << 20 }).stdout;
      const rows = annotated.split('\n').filter((l) => /^\s*[\d,]+ \(/.test(l) && !/PROGRAM TOTALS|below main|libc_start|csu\/|aeMain|\?\?\?:main |ld-linux/.test(l));
      for (const l of rows.slice(0, Number(process.env.BENCH_PROFILE_TOP ?? 30))) {
        const m = /^\s*([\d,]+) \(\s*([\d.]+)%\)\s+(.*)$/.exec(l);
        if (m) console.log(`${fmtInt(Number(m[1]!.replace(/,/g, '')) / N).padStart(9)} ${m[2]!.padStart(6)}%  ${m[3]!.replace(/ \[[^\]]*\]$/, '')}`);
      }
    }
  }
}

const started = Date.now();
console.log(`# bench/tiers — ${new Date().toISOString()}`);
if (SECTIONS.has('instructions')) await instructions();
if (SECTIONS.has('memory')) await memory();
if (SECTIONS.has('profile')) await profile();
console.log(`\n(${((Date.now() - started) / 1000).toFixed(0)} s)`);
