/**
 * `npm run bench:cluster`: does redlimit scale past one machine? Measured on a real local Redis
 * Cluster (devtools/local-cluster.ts, 3 primaries) and a standalone redis-server, with the client
 * most services use: createRateLimiter with 3 tiers (minute gcra / hour sliding_window / day quota).
 *
 * 1. Spread: one decision for each of BENCH_IDS ids (default 100k; half `user:<n>`, half UUIDs, as
 *    a service names its callers) with BENCH_INFLIGHT (256) in flight through an ioredis Cluster,
 *    then per primary: keys (DBSIZE), script calls and all commands processed (INFO commandstats /
 *    stats deltas), Redis CPU (INFO cpu delta). Load = max/mean over the primaries. The same ids
 *    then go to a standalone redis-server: its decisions/s and Redis CPU per decision are the
 *    single-shard figures.
 * 2. Memory: MEMORY USAGE (SAMPLES 0) of the 3 tier keys of BENCH_SAMPLE (2000) ids per primary, and
 *    the used_memory delta per id over the run, on each primary and on the standalone server.
 * 3. Instructions (valgrind callgrind): the same decisions against ONE redis-server under callgrind,
 *    standalone vs cluster-enabled owning all 16384 slots, for 1 limit (gcra) and 3 tiers, with
 *    coalescing on (the default) and off. Per decision = (count after 3N - count after N) / 2N, as
 *    bench/callgrind.ts does. A single-node cluster owning every slot does the work one primary of
 *    an N-shard cluster does per decision (same cluster-mode server code; the client groups a
 *    turn's decisions per primary, so a primary gets them as node_batch calls of up to 64 — of
 *    about 256/N with N shards above 4, which the spread part's calls per decision shows), without the
 *    other nodes' cluster-bus gossip, which grows with wall time, not decisions, and would not cancel
 *    in the difference (valgrind runs are slow and their wall time varies several-fold here).
 * 4. The model: decisions/s and memory for BENCH_MODEL_IDS (10M) ids x 3 tiers on 3, 6, 12 shards,
 *    derived from the measured per-shard figures.
 *
 * Prints a markdown section; BENCH_WRITE=1 also puts it at the end of BENCHMARKS.md, replacing an
 * earlier "## Issue 17: scaling past one machine" section (up to the next "## " heading).
 * BENCH_PARTS=spread,instructions (default both) picks parts; BENCH_CALLS sets N for callgrind (200).
 * Each run saves its figures to BENCH_JSON (default $TMPDIR/redlimit-bench-cluster.json) as it goes;
 * BENCH_FROM=<that file> renders them again (e.g. with BENCH_WRITE=1) without measuring.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster, Redis } from 'ioredis';
import { createRateLimiter, hashSlot, type Cost, type LimitSpec } from '../src/index.js';
import { clusterPort, startLocalCluster } from '../devtools/local-cluster.js';
import { freePort, redisServerBinary, startLocalRedis, waitForPing } from '../devtools/local-redis.js';

let IDS = Number(process.env.BENCH_IDS ?? 100_000);
let INFLIGHT = Number(process.env.BENCH_INFLIGHT ?? 256);
let SAMPLE = Number(process.env.BENCH_SAMPLE ?? 2_000);
let CALLS = Number(process.env.BENCH_CALLS ?? 200);
const MODEL_IDS = Number(process.env.BENCH_MODEL_IDS ?? 10_000_000);
const PARTS = new Set((process.env.BENCH_PARTS ?? 'spread,instructions').split(','));
const SECTION = '## Issue 17: scaling past one machine';
/**
 * The key layout of the spread and memory parts: BENCH_LAYOUT=per-limit for a key per limit (3
 * keys per id), else the default (one key per subject: `rl:{<id>}:minute+hour+day`).
 */
const LAYOUT: 'per-limit' | 'auto' = process.env.BENCH_LAYOUT === 'per-limit' ? 'per-limit' : 'auto';

/** The most common production shape: per minute, per hour, per day. */
export const TIERS: LimitSpec[] = [
  { name: 'minute', algo: 'gcra', limit: 600, periodMs: 60_000 },
  { name: 'hour', algo: 'sliding_window', limit: 10_000, periodMs: 3_600_000 },
  { name: 'day', algo: 'quota', limit: 100_000, unit: 'day' },
];
const ONE: LimitSpec[] = [TIERS[0]!];
/**
 * The memory sample's cost: the whole minute, one unit of the hour and the day. A gcra key lives
 * only until its theoretical arrival time (100 ms after one unit of 600/min), so after the spread
 * run (cost 1, an id's first request) most minute keys are gone; the sampled ids decide again taking
 * the minute, which keeps their 3 keys for 60 s while MEMORY USAGE reads them: the state of an id
 * busy in the current minute, which is what the memory model counts.
 */
const SAMPLE_COST: Cost = { minute: 600, hour: 1, day: 1 };

/** Ids as a service names its callers: `user:<n>` for even i, a (seeded, so repeatable) v4 UUID for odd i. */
export function serviceIds(n: number, seed = 0x9e3779b9): string[] {
  let x = seed >>> 0 || 1;
  const next = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
  const hex = (v: number) => v.toString(16).padStart(8, '0');
  return Array.from({ length: n }, (_, i) => {
    if (i % 2 === 0) return `user:${i / 2}`;
    const [a, b, c, d] = [hex(next()), hex(next()), hex(next()), hex(next())];
    return `${a}-${b.slice(0, 4)}-4${b.slice(5, 8)}-${'89ab'[next() % 4]}${c.slice(1, 4)}-${c.slice(4)}${d}`;
  });
}

type Limiter = ReturnType<typeof createRateLimiter>;

/** One decision per id, `inflight` at a time; every one must come from Redis and be allowed. */
async function decideAll(limiter: Limiter, ids: readonly string[], cost?: Cost, inflight = INFLIGHT): Promise<void> {
  const options = cost === undefined ? undefined : { cost };
  let next = 0;
  let bad = 0;
  const worker = async () => {
    while (next < ids.length) {
      const d = await limiter.limit(ids[next++]!, options);
      if (d.source !== 'redis' || !d.allowed) bad++;
    }
  };
  await Promise.all(Array.from({ length: Math.min(inflight, ids.length) }, worker));
  if (bad) throw new Error(`${bad} of ${ids.length} decisions did not come from Redis allowed (timeouts? raise timeoutMs)`);
}

// --- INFO helpers ---------------------------------------------------------------------------

interface NodeStats {
  keys: number;
  commands: number;
  scriptCalls: number;
  cpuSec: number;
  usedMemory: number;
}

async function statsOf(r: Redis): Promise<NodeStats> {
  const info = (await r.info('all')) as string;
  const num = (re: RegExp) => Number(re.exec(info)?.[1] ?? 0);
  let scriptCalls = 0;
  for (const m of info.matchAll(/^cmdstat_(evalsha|evalsha_ro|eval|eval_ro|fcall|fcall_ro):calls=(\d+)/gm)) scriptCalls += Number(m[2]);
  return {
    keys: Number(await r.dbsize()),
    commands: num(/^total_commands_processed:(\d+)/m),
    scriptCalls,
    cpuSec: num(/^used_cpu_user:([\d.]+)/m) + num(/^used_cpu_sys:([\d.]+)/m),
    usedMemory: num(/^used_memory:(\d+)/m),
  };
}

const delta = (a: NodeStats, b: NodeStats): NodeStats => ({
  keys: b.keys - a.keys,
  commands: b.commands - a.commands,
  scriptCalls: b.scriptCalls - a.scriptCalls,
  cpuSec: b.cpuSec - a.cpuSec,
  usedMemory: b.usedMemory - a.usedMemory,
});

/** Bytes per key of hash-table buckets: the keys dict and the expires dict (every key has a TTL), 8 B a bucket, tables a power of two above the count. */
const bucketBytes = (keys: number) => (2 * 8 * 2 ** Math.ceil(Math.log2(keys + 1))) / keys;

const maxOverMean = (xs: number[]) => Math.max(...xs) / (xs.reduce((s, x) => s + x, 0) / xs.length);

/** MEMORY USAGE SAMPLES 0 of every key of these ids, per id (pipelined). */
async function bytesPerId(r: Redis, prefix: string, ids: readonly string[], limits: readonly LimitSpec[], layout: 'per-limit' | 'auto'): Promise<number> {
  const p = r.pipeline();
  const names = layout === 'auto' ? [limits.map((l) => l.name).join('+')] : limits.map((l) => l.name);
  for (const id of ids) for (const name of names) p.call('MEMORY', 'USAGE', `${prefix}:{${id}}:${name}`, 'SAMPLES', '0');
  const replies = (await p.exec())!;
  let bytes = 0;
  let missing = 0;
  for (const [err, b] of replies) {
    if (err || b === null) missing++;
    else bytes += Number(b);
  }
  if (missing) throw new Error(`${missing} of ${replies.length} sampled keys were gone before MEMORY USAGE read them`);
  return bytes / ids.length;
}

// --- part 1 and 2: spread, throughput, memory ----------------------------------------------

interface RunFigures {
  seconds: number;
  nodeCpuSec: number;
  nodes: { port: number; ids: number; before: NodeStats; d: NodeStats; bytesPerId: number }[];
}

async function runDecisions(client: Redis | Cluster, masters: Redis[], ownerOf: (slot: number) => number, ids: string[], layout: 'per-limit' | 'auto'): Promise<RunFigures> {
  // The same layout on both sides.
  const limiter = createRateLimiter({ redis: client, limits: TIERS, timeoutMs: 10_000, layout });
  await limiter.ready();
  await limiter.limit('warm-up'); // connections open, scripts/functions loaded on its node
  await Promise.all(masters.map((m) => m.flushall()));
  const before = await Promise.all(masters.map(statsOf));
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  await decideAll(limiter, ids);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const c = process.cpuUsage(cpu0);
  const after = await Promise.all(masters.map(statsOf));
  const byNode = masters.map(() => [] as string[]);
  for (const id of ids) byNode[ownerOf(hashSlot(`{${id}}`))]!.push(id);
  const samples = byNode.map((b) => b.slice(0, SAMPLE));
  await decideAll(limiter, samples.flat(), SAMPLE_COST);
  const sampled = await Promise.all(masters.map((m, i) => bytesPerId(m, 'rl', samples[i]!, TIERS, layout)));
  await limiter.close();
  const nodes = masters.map((m, i) => ({ port: m.options.port!, ids: byNode[i]!.length, before: before[i]!, d: delta(before[i]!, after[i]!), bytesPerId: sampled[i]! }));
  return { seconds, nodeCpuSec: (c.user + c.system) / 1e6, nodes };
}

async function clusterRun(ids: string[]): Promise<RunFigures> {
  const lc = await startLocalCluster(3);
  const client = new Cluster(lc.nodes, { slotsRefreshInterval: 0, retryDelayOnTryAgain: 5 });
  client.on('error', () => {});
  const masters = lc.nodes.map((n) => new Redis(n.port, n.host));
  try {
    const owner = new Int32Array(16384).fill(-1);
    const slots = await masters[0]!.cluster('SLOTS');
    for (const [from, to, node] of slots) for (let s = from; s <= to; s++) owner[s] = lc.nodes.findIndex((n) => n.port === node?.[1]);
    return await runDecisions(client, masters, (s) => owner[s]!, ids, LAYOUT);
  } finally {
    client.disconnect();
    for (const m of masters) m.disconnect();
    await lc.stop();
  }
}

async function standaloneRun(ids: string[]): Promise<RunFigures> {
  const server = await startLocalRedis();
  const client = new Redis(server.port, '127.0.0.1');
  const admin = new Redis(server.port, '127.0.0.1');
  try {
    return await runDecisions(client, [admin], () => 0, ids, LAYOUT);
  } finally {
    client.disconnect();
    admin.disconnect();
    await server.stop();
  }
}

// --- part 3: instructions under callgrind ---------------------------------------------------

/** One redis-server under callgrind (cluster-enabled and owning every slot, or standalone): the instructions it ran while `work` ran. */
async function instructionsOf(mode: 'standalone' | 'cluster', work: (client: Redis | Cluster) => Promise<void>): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'redlimit-cluster-cg-'));
  const port = mode === 'cluster' ? await clusterPort() : await freePort();
  const clusterArgs = mode === 'cluster' ? ['--cluster-enabled', 'yes', '--cluster-announce-ip', '127.0.0.1', '--cluster-config-file', join(dir, 'nodes.conf'), '--dir', dir] : [];
  const args = ['--tool=callgrind', `--callgrind-out-file=${join(dir, 'out')}`, redisServerBinary()!, '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--hz', '1', ...clusterArgs];
  const child = spawn('valgrind', args, { stdio: 'ignore' });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const admin = new Redis(port, '127.0.0.1', { lazyConnect: true, autoResendUnfulfilledCommands: false });
  admin.on('error', () => {});
  try {
    await waitForPing(port, 120_000);
    await admin.connect();
    // The port was free when picked, not necessarily when valgrind bound it: make sure the server answering is ours.
    const pid = Number(/^process_id:(\d+)/m.exec((await admin.info('server')) as string)?.[1]);
    if (pid !== child.pid) throw new Error(`port ${port} is answered by process ${pid}, not our valgrind (${child.pid}): another server took the port; rerun`);
    let client: Redis | Cluster;
    if (mode === 'cluster') {
      await admin.call('CLUSTER', 'ADDSLOTSRANGE', '0', '16383');
      for (let i = 0; !String(await admin.call('CLUSTER', 'INFO')).includes('cluster_state:ok'); i++) {
        if (i > 600) throw new Error('single-node cluster never reached cluster_state:ok');
        await new Promise((r) => setTimeout(r, 100));
      }
      client = new Cluster([{ host: '127.0.0.1', port }], { slotsRefreshInterval: 0, slotsRefreshTimeout: 60_000, retryDelayOnTryAgain: 5 });
    } else {
      client = new Redis(port, '127.0.0.1', { autoResendUnfulfilledCommands: false });
    }
    client.on('error', () => {});
    await new Promise((r) => (client.status === 'ready' ? r(null) : client.once('ready', r)));
    await work(client);
    client.disconnect();
    await admin.call('SHUTDOWN', 'NOSAVE').catch(() => {});
    admin.disconnect();
    await exited;
    const file = readdirSync(dir).find((f) => f.startsWith('out'))!;
    return Number(/^summary: (\d+)/m.exec(readFileSync(join(dir, file), 'utf8'))![1]);
  } finally {
    admin.disconnect();
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `functions: false` keeps a standalone client on EVALSHA, as a Cluster client is (the default switches standalone to FCALL). */
async function perDecision(mode: 'standalone' | 'cluster', limits: LimitSpec[], coalesce: boolean, functions = true, layout: 'per-limit' | 'auto' = 'per-limit'): Promise<number> {
  const count = (n: number) =>
    instructionsOf(mode, async (client) => {
      // The same work on both: the layout given (the default for 3 tiers is one key per subject on both).
      const limiter = createRateLimiter({ redis: client, limits, timeoutMs: 60_000, coalesce, functions, layout });
      await limiter.ready();
      await decideAll(limiter, serviceIds(n, 7));
      await limiter.close();
    });
  const few = await count(CALLS);
  const many = await count(3 * CALLS);
  return (many - few) / (2 * CALLS);
}

interface Figures {
  meta: { commit: string; at: string; redis: string; ioredis: string; node: string; cores: number; load: number; ids: number; inflight: number; sample: number; calls: number; layout?: 'per-limit' | 'auto' };
  cl: RunFigures | null;
  sa: RunFigures | null;
  /** Instructions per decision by `${limits}/${coalesce}/${mode}`. */
  ins: Record<string, number>;
}
const JSON_OUT = process.env.BENCH_JSON ?? join(tmpdir(), 'redlimit-bench-cluster.json');

// --- report -----------------------------------------------------------------------------------

const fmt = (n: number, d = 0) => n.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });

function commitLine(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src', 'generated', 'scripts-lua'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return dirty ? `${head} with uncommitted changes in src/generated/scripts-lua` : head;
  } catch {
    return process.env.BENCH_COMMIT ?? 'unknown (not a git checkout; set BENCH_COMMIT)';
  }
}

async function main(): Promise<void> {
  const out: string[] = [];
  const say = (s = '') => {
    out.push(s);
    console.log(s);
  };
  // BENCH_FROM=<json> renders a saved run without measuring; every run saves its figures to BENCH_JSON.
  const saved: Figures | null = process.env.BENCH_FROM ? JSON.parse(readFileSync(process.env.BENCH_FROM, 'utf8')) : null;
  const fig: Figures = saved ?? {
    meta: {
      commit: commitLine(),
      at: new Date().toISOString().slice(0, 16),
      redis: execFileSync('redis-server', ['--version'], { encoding: 'utf8' }).match(/v=(\S+)/)![1]!,
      ioredis: JSON.parse(readFileSync('node_modules/ioredis/package.json', 'utf8')).version,
      node: process.version,
      cores: cpus().length,
      load: loadavg()[0]!,
      ids: IDS,
      inflight: INFLIGHT,
      sample: SAMPLE,
      calls: CALLS,
      layout: LAYOUT,
    },
    cl: null,
    sa: null,
    ins: {},
  };
  ({ ids: IDS, inflight: INFLIGHT, sample: SAMPLE, calls: CALLS } = fig.meta);
  // Keys per id with every tier alive: 3 with a key per limit, 1 with one key per subject.
  const layout = fig.meta.layout ?? 'per-limit';
  const K = layout === 'auto' ? 1 : 3;
  const keyWord = K === 1 ? 'one key per subject, `rl:{<id>}:minute+hour+day` (the default)' : 'a key per limit, `rl:{<id>}:<limit>` (`layout: \'per-limit\'`)';
  const save = () => writeFileSync(JSON_OUT, JSON.stringify(fig));
  say(SECTION);
  say();
  say(`Measured by \`npm run bench:cluster\` (bench/cluster.ts) at commit **${fig.meta.commit}**, ${fig.meta.at}Z, redis-server ${fig.meta.redis},`);
  say(`ioredis ${fig.meta.ioredis}, Node ${fig.meta.node}, ${fig.meta.cores} cores shared with other work (load average ${fig.meta.load.toFixed(1)}).`);
  say(`Limits: minute gcra 600/min, hour sliding_window 10k/h, day quota 100k/day; spread and memory with ${keyWord} (the id is the hash tag, so one id's state shares a slot).`);
  say('Rerun to refresh after state or script changes: `BENCH_WRITE=1 npm run bench:cluster` rewrites this section.');
  say();

  if (!saved && PARTS.has('spread')) {
    const ids = serviceIds(IDS);
    fig.cl = await clusterRun(ids);
    fig.sa = await standaloneRun(ids);
    save();
  }
  const { cl, sa, ins } = fig;
  if (cl && sa) {
    say(`### Measured: ${fmt(IDS)} ids (half \`user:<n>\`, half UUIDs), one 3-tier decision each, ${INFLIGHT} in flight`);
    say();
    say(K === 3 ? '| node | ids | keys (hour + day + minute keys still alive) | script calls | commands (incl. those scripts run) | Redis CPU s | µs CPU / decision | used_memory delta B/key (×3 = B/id) | MEMORY USAGE B/id (3 keys) |' : '| node | ids | keys (one per id) | script calls | commands (incl. those scripts run) | Redis CPU s | µs CPU / decision | used_memory delta B/key (= B/id) | MEMORY USAGE B/id (its key) |');
    say('|---|---|---|---|---|---|---|---|---|');
    for (const n of cl.nodes) {
      say(`| primary :${n.port} | ${fmt(n.ids)} | ${fmt(n.d.keys)} | ${fmt(n.d.scriptCalls)} | ${fmt(n.d.commands)} | ${n.d.cpuSec.toFixed(2)} | ${fmt((n.d.cpuSec * 1e6) / n.ids, 1)} | ${fmt(n.d.usedMemory / n.d.keys, 1)} (${fmt((K * n.d.usedMemory) / n.d.keys)}) | ${fmt(n.bytesPerId, 1)} |`);
    }
    const s = sa.nodes[0]!;
    say(`| standalone | ${fmt(s.ids)} | ${fmt(s.d.keys)} | ${fmt(s.d.scriptCalls)} | ${fmt(s.d.commands)} | ${s.d.cpuSec.toFixed(2)} | ${fmt((s.d.cpuSec * 1e6) / s.ids, 1)} | ${fmt(s.d.usedMemory / s.d.keys, 1)} (${fmt((K * s.d.usedMemory) / s.d.keys)}) | ${fmt(s.bytesPerId, 1)} |`);
    say();
    const load = (f: (n: RunFigures['nodes'][0]) => number) => maxOverMean(cl!.nodes.map(f)).toFixed(3);
    if (K === 3) say(`Each id decides once at cost 1 (its first request): its hour and day keys stay, its minute gcra key lives only 100 ms (until its theoretical arrival time), so \`keys\` is 2 per id plus the minute keys not yet expired when INFO was read. used_memory delta is read then, per key present. MEMORY USAGE: the first ${fmt(SAMPLE)} ids of each node decide again taking the whole minute (cost minute 600, hour 1, day 1) so all 3 keys are alive, then SAMPLES 0 of each.`);
    else say(`Each id decides once at cost 1 (its first request): its one key holds the three states (the minute's until it is full again, the hour's and the day's) and lives as long as the longest. used_memory delta is read then, per key. MEMORY USAGE: the first ${fmt(SAMPLE)} ids of each node decide again taking the whole minute (cost minute 600, hour 1, day 1), then SAMPLES 0 of each key.`);
    say();
    say(`Load max/mean over the 3 primaries (target ≤ 1.1): ids **${load((n) => n.ids)}**, keys **${load((n) => n.d.keys)}**, script calls **${load((n) => n.d.scriptCalls)}**, all commands ${load((n) => n.d.commands)}, Redis CPU ${load((n) => n.d.cpuSec)} (CPU on a shared 2-core machine is noisy).`);
    say(`Decisions/s seen by one Node client (${INFLIGHT} in flight; client-bound on this machine, not a shard limit): cluster ${fmt(IDS / cl.seconds)}, standalone ${fmt(IDS / sa.seconds)}.`);
    say(`Node CPU per decision: cluster ${fmt((cl.nodeCpuSec * 1e6) / IDS, 1)} µs, standalone ${fmt((sa.nodeCpuSec * 1e6) / IDS, 1)} µs. Script calls per decision: cluster ${(cl.nodes.reduce((t, n) => t + n.d.scriptCalls, 0) / IDS).toFixed(3)} (coalescing groups a turn's decisions per primary: node_batch or, with one key per subject, tiers_node_batch calls over many slots), standalone ${(s.d.scriptCalls / IDS).toFixed(3)}.`);
    say(`Empty node used_memory before the run: ${cl.nodes.map((n) => fmt(n.before.usedMemory)).join(', ')} B (cluster primaries), ${fmt(s.before.usedMemory)} B (standalone).`);
    say();
  }

  if (saved ? Object.keys(ins).length > 0 : PARTS.has('instructions')) {
    say(`### Measured: Redis instructions per decision, one server under callgrind (N = ${CALLS} and ${3 * CALLS} fresh ids, ${INFLIGHT} in flight, \`--hz 1\`)`);
    say();
    say('Standalone vs a cluster-enabled server owning all 16384 slots through an ioredis Cluster client: the per-decision work of one primary of any N-shard cluster (see the header of bench/cluster.ts for why this, not 3 nodes under valgrind).');
    say();
    say('Both sides with their default transport, FCALL (a limiter switches its client to the Functions library, on a Cluster once every primary holds it), and both with `functions: false` (EVALSHA): the same calls on both sides in each pair, which isolates what cluster mode costs the server per call.');
    say();
    say('| limits | coalescing | standalone (default: FCALL) | cluster node (default: FCALL) | cluster / standalone | standalone, EVALSHA | cluster node, EVALSHA | cluster / standalone, EVALSHA |');
    say('|---|---|---|---|---|---|---|---|');
    // BENCH_SEED=<json of { key: instructions }> reuses counts already measured (re-read before each).
    const seeded = (k: string): number | undefined => (process.env.BENCH_SEED ? (JSON.parse(readFileSync(process.env.BENCH_SEED, 'utf8')) as Record<string, number>)[k] : undefined);
    const measure = async (key: string, mode: 'standalone' | 'cluster', limits: LimitSpec[], coalesce: boolean, functions: boolean, layout: 'per-limit' | 'auto'): Promise<number> => {
      const v = (ins[key] ??= seeded(key) ?? (await perDecision(mode, limits, coalesce, functions, layout)));
      save();
      return v;
    };
    // BENCH_ROWS=<labels, |-separated> measures some rows only.
    const rows = process.env.BENCH_ROWS ? new Set(process.env.BENCH_ROWS.split('|')) : null;
    for (const [label, limits, layout] of [
      ['1 limit (gcra)', ONE, 'per-limit'],
      ['3 tiers, a key per limit', TIERS, 'per-limit'],
      ['3 tiers, one key per subject (the default)', TIERS, 'auto'],
    ] as const) {
      if (rows !== null && !rows.has(label)) continue;
      for (const coalesce of [true, false]) {
        const k = `${label}/${coalesce}`;
        const a = await measure(`${k}/standalone`, 'standalone', limits, coalesce, true, layout);
        const b = await measure(`${k}/cluster`, 'cluster', limits, coalesce, true, layout);
        const c = await measure(`${k}/standalone-evalsha`, 'standalone', limits, coalesce, false, layout);
        const d = await measure(`${k}/cluster-evalsha`, 'cluster', limits, coalesce, false, layout);
        say(`| ${label} | ${coalesce ? 'on (default)' : 'off'} | ${fmt(a)} | ${fmt(b)} | ${(b / a).toFixed(3)}× | ${fmt(c)} | ${fmt(d)} | ${(d / c).toFixed(3)}× |`);
      }
    }
    say();
  }

  if (cl && sa) {
    const s = sa.nodes[0]!;
    const cpuStandalone = s.d.cpuSec / s.ids; // s of Redis CPU per decision, one shard
    const cpuCluster = cl.nodes.reduce((t, n) => t + n.d.cpuSec, 0) / IDS;
    const insRatio = ins['3 tiers, one key per subject (the default)/true/cluster'] && ins['3 tiers, one key per subject (the default)/true/standalone'] ? ins['3 tiers, one key per subject (the default)/true/cluster'] / ins['3 tiers, one key per subject (the default)/true/standalone'] : NaN;
    const perShard = 1 / cpuCluster; // decisions/s one saturated primary serves, measured on the cluster
    const skew = maxOverMean(cl.nodes.map((n) => n.ids));
    const clusterBytes = (K * cl.nodes.reduce((t, n) => t + n.d.usedMemory, 0)) / cl.nodes.reduce((t, n) => t + n.d.keys, 0);
    const usage = cl.nodes.reduce((t, n) => t + n.bytesPerId * n.ids, 0) / IDS;
    const baseline = Math.max(...cl.nodes.map((n) => n.before.usedMemory));
    const nodeCpu = cl.nodeCpuSec / IDS;
    const measuredKeys = cl.nodes.reduce((t, n) => t + n.d.keys, 0) / cl.nodes.length;
    say(`### Model: ${fmt(MODEL_IDS / 1e6)}M ids × 3 tiers on an N-shard cluster (derived from the figures above)`);
    say();
    say('Measured inputs (this run):');
    say(`- Redis CPU per 3-tier decision on a cluster primary: **${fmt(cpuCluster * 1e6, 1)} µs** (sum of the primaries' INFO cpu deltas / decisions); standalone ${fmt(cpuStandalone * 1e6, 1)} µs. So one saturated primary serves ≈ **${fmt(perShard)} decisions/s**, standalone ≈ ${fmt(1 / cpuStandalone)}/s.`);
    if (!Number.isNaN(insRatio)) say(`- Instructions per 3-tier decision, cluster node / standalone (coalescing on): ${insRatio.toFixed(3)}× (table above; CPU-time figures on this loaded machine are noisier than instruction counts).`);
    say(`- Id spread max/mean: ${skew.toFixed(3)} at ${fmt(IDS)} ids (CRC16 over ~${fmt(IDS / 16384, 1)} ids per slot; at ${fmt(MODEL_IDS / 1e6)}M ids, ~${fmt(MODEL_IDS / 16384)} per slot, the binomial spread is tighter still, so ${skew.toFixed(3)} is a conservative factor).`);
    say(`- Memory per id (${K === 3 ? '3 keys' : 'its one key'}): used_memory delta **${fmt(clusterBytes, 1)} B** on the cluster (${K} × per key present; standalone ${fmt((K * s.d.usedMemory) / s.d.keys, 1)} B; includes the expires dict and the cluster's per-slot key bookkeeping), MEMORY USAGE ${fmt(usage, 1)} B (the values and key objects only). Empty node: ${fmt(baseline / 1e6, 1)} MB.`);
    say(`- Node client CPU per decision: ${fmt(nodeCpu * 1e6, 1)} µs on the cluster client.`);
    say();
    say(`Assumptions: each decision touches exactly one shard (one id = one hash tag = one slot), so there is no cross-shard fan-out; the client routes by slot table and the limiter groups the decisions of a turn per primary. Throughput is bound by the hottest shard: N × per-shard capacity / (max/mean), each primary on its own core with the network not the limit. Per-shard capacity is taken from Redis CPU per decision at 100% of one core (the measured single-shard figure); real deployments also pay network syscalls per call, which is in this figure since the measurement is over loopback TCP. Clients scale out horizontally: the cores of client needed = decisions/s × client CPU per decision. Memory per shard = keys (${K} × ids/N × max/mean) × bytes per key + empty-node baseline, bytes per key being the measured used_memory delta per key with its hash-table share (2 dicts × 8 B × table size / keys, tables a power of two) recomputed for the modelled key count; replicas double it. ${K === 3 ? 'All keys alive is the worst case: an id quiet for a minute has no minute key.' : 'Every id with its key alive is the worst case (an id quiet for a day has none).'}`);
    say();
    say(`Two throughput columns: **as measured** (the cluster client, coalescing per primary: ${fmt(cpuCluster * 1e6, 1)} µs per decision per shard), and **at the standalone server's CPU per decision** (${fmt(cpuStandalone * 1e6, 1)} µs: what a shard would do with no cluster-mode overhead and batches as large as standalone's).`);
    say();
    say('| shards N | ids per shard (hottest) | decisions/s, as measured | client cores needed | decisions/s at the standalone CPU per decision | memory per shard (hottest) | memory, all primaries |');
    say('|---|---|---|---|---|---|---|');
    for (const n of [3, 6, 12]) {
      const perShardIds = (MODEL_IDS / n) * skew;
      const rate = (n * perShard) / skew;
      const coalesced = n / cpuStandalone / skew;
      // Per key, the model swaps the measured primaries' hash-table fill for the fill at this size.
      const keys = K * perShardIds;
      const shardBytes = (k: number) => k * (clusterBytes / K - bucketBytes(measuredKeys) + bucketBytes(k)) + baseline;
      const mem = shardBytes(keys);
      const total = n * shardBytes((K * MODEL_IDS) / n);
      say(`| ${n} | ${fmt(perShardIds / 1e6, 2)}M | ${fmt(rate / 1e3)}k | ${fmt(rate * nodeCpu, 1)} | ${fmt(coalesced / 1e3)}k | ${fmt(mem / 2 ** 20)} MiB | ${fmt(total / 2 ** 30, 2)} GiB |`);
    }
    say();
    say('Measured: the per-node tables, the load ratios, the instruction counts, µs CPU per decision and bytes per id. Derived: every number in this model table.');
    say();
    const keyLoad = maxOverMean(cl.nodes.map((n) => n.d.keys));
    const callLoad = maxOverMean(cl.nodes.map((n) => n.d.scriptCalls));
    say('### Verdicts (issue 17, "scale past one machine")');
    say();
    say('| target | result |');
    say('|---|---|');
    say(`| keys of ${fmt(IDS)} ids spread over 3 primaries, max/mean ≤ 1.1 | **${Math.max(keyLoad, callLoad) <= 1.1 ? 'met' : 'missed'}**: keys ${keyLoad.toFixed(3)}, ids ${skew.toFixed(3)}, script calls ${callLoad.toFixed(3)}. ${K === 3 ? "Each id's 3 keys share its slot" : 'Each id has one key'} (test/runtime/cluster-spread.test.ts checks both layouts with CLUSTER KEYSLOT). |`);
    if (Object.keys(ins).length === 24) {
      const ratio = (label: string, c: boolean, t: '' | '-evalsha') => ins[`${label}/${c}/cluster${t}`]! / ins[`${label}/${c}/standalone${t}`]!;
      const cells = (c: boolean, t: '' | '-evalsha') => [ratio('1 limit (gcra)', c, t), ratio('3 tiers, a key per limit', c, t), ratio('3 tiers, one key per subject (the default)', c, t)];
      const eq = (x: number) => Math.abs(x - 1) <= 0.05;
      const near = (x: number) => Math.abs(x - 1) <= 0.1;
      const all = [...cells(true, ''), ...cells(false, ''), ...cells(true, '-evalsha'), ...cells(false, '-evalsha')];
      const verdict = all.every(eq) ? 'met' : all.every(near) ? 'within the run-to-run noise (5–10%), not settled' : 'missed';
      const show = (xs: number[]) => `${xs[0]!.toFixed(3)}× for gcra, ${xs[1]!.toFixed(3)}× for 3 tiers with a key per limit, ${xs[2]!.toFixed(3)}× with one key per subject`;
      say(`| per-shard instructions per decision equal to standalone | **${verdict}** (cluster node / standalone, the same calls on both sides: default client (FCALL), coalescing on ${show(cells(true, ''))}, off ${show(cells(false, ''))}; EVALSHA, on ${show(cells(true, '-evalsha'))}, off ${show(cells(false, '-evalsha'))}). The coalescer groups a turn's decisions per primary and sends the decisions of several slots as one node_batch call (tiers_node_batch with one key per subject; declared \`allow-cross-slot-keys\`, Redis ≥ 7.0; sent on the primary's own connection, so it follows no redirect: a decision whose slot the node does not serve is decided again by its slot): ${(cl.nodes.reduce((t, n) => t + n.d.scriptCalls, 0) / IDS).toFixed(3)} script calls per decision on the 3 primaries above vs ${(s.d.scriptCalls / IDS).toFixed(3)} standalone (each primary gets about a third of each turn, so its calls carry fewer decisions). |`);
    }
    say(`| memory per id | cluster ${fmt(clusterBytes)} B vs standalone ${fmt((K * s.d.usedMemory) / s.d.keys)} B per id (${K === 3 ? '3 keys' : 'one key'}, used_memory); MEMORY USAGE ${fmt(usage / K, 1)} vs ${fmt(s.bytesPerId / K, 1)} B per key: Redis 7.0 in cluster mode keeps two pointers per key (16 B) to list each slot's keys; the rest of the used_memory gap is hash-table fill (tables a power of two: ${fmt(measuredKeys)} keys per primary fill theirs to ${(measuredKeys / 2 ** Math.ceil(Math.log2(measuredKeys + 1))).toFixed(2)}, ${fmt(bucketBytes(measuredKeys), 1)} B of buckets per key; the standalone server's ${fmt(s.d.keys)} keys fill to ${(s.d.keys / 2 ** Math.ceil(Math.log2(s.d.keys + 1))).toFixed(2)}, ${fmt(bucketBytes(s.d.keys), 1)} B), which the model recomputes per size. |`);
    say();
  }

  if (process.env.BENCH_WRITE === '1') {
    const file = 'BENCHMARKS.md';
    const text = readFileSync(file, 'utf8');
    const start = text.indexOf(SECTION);
    const section = out.join('\n').trimEnd() + '\n';
    let updated: string;
    if (start < 0) updated = text.trimEnd() + '\n\n' + section;
    else {
      const after = text.indexOf('\n## ', start + SECTION.length);
      updated = text.slice(0, start) + section + (after < 0 ? '' : '\n' + text.slice(after + 1));
    }
    writeFileSync(file, updated);
    console.error(`wrote ${file}`);
  }
}

await main();
