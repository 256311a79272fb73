#!/usr/bin/env node
/**
 * `npx redlimit …`: the operator's toolkit. Exit codes: 0 done, 1 failed, 2 bad input (usage,
 * an unknown script, a bad number, a malformed subject), 3 Redis unreachable. An absent key is
 * an answer (full), not a failure: `inspect` reports it with exit 0.
 */
import { existsSync, mkdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, InvalidArgumentError as CommanderArgumentError, Option } from 'commander';
import * as b from '../../generated/index.js';
import { functionsLibrary } from '../../generated/index.js';
import { algoNames, algorithms, decisionReply, type AlgoName } from '../../generated/index.js';
import type { LimitSpec } from '../client/config.js';
import { blockKey, limitKey, resolveSubject, type Subject } from '../client/keys.js';
import { createRateLimiter } from '../client/limiter.js';
import { argvWith, compileLimit } from '../client/plan.js';
import { RedlimitError } from '../errors.js';
import { preload, runScript, type RedisClientLike, type ScriptDef } from '../runtime/index.js';
import { registerPolicyCommands } from './policy.js';
import { chartSvg, simulate, TRAFFIC, type Traffic } from './simulate.js';

class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

/** The command-line option that sets each limit parameter (the others take their defaults). */
const PARAM_FLAGS: Readonly<Record<string, 'limit' | 'period' | 'burst' | 'unit'>> = { limit: 'limit', periodMs: 'period', burst: 'burst', unit: 'unit' };

/** The algorithms that take a parameter, and those that do not, for option help. */
function takers(prop: string): { yes: string[]; no: string[] } {
  const yes = algoNames.filter((a) => algorithms[a].params.some((p) => p.prop === prop));
  return { yes, no: algoNames.filter((a) => !yes.includes(a)) };
}

function int(name: string, min = 0) {
  return (raw: string): number => {
    if (!/^\d+$/.test(raw) || Number(raw) < min) throw new CommanderArgumentError(`${name} must be a whole number${min ? ` >= ${min}` : ''}, got ${JSON.stringify(raw)}`);
    return Number(raw);
  };
}

function scriptByName(name: string): ScriptDef {
  const def = b.allScripts.find((d) => d.name === name);
  if (!def) throw new CliError(`unknown script ${JSON.stringify(name)}; redlimit scripts lists them`, 2);
  return def;
}

/** An ioredis client (a peer dependency) that never queues: unreachable is an answer, fast. */
async function connect(url: string, cluster: boolean) {
  let ioredis: Pick<typeof import('ioredis'), 'Redis' | 'Cluster'>;
  try {
    ioredis = await import('ioredis');
  } catch {
    throw new CliError('the CLI talks to Redis through ioredis: npm install ioredis', 1);
  }
  const options = { enableOfflineQueue: true, maxRetriesPerRequest: 0, connectTimeout: 3_000, retryStrategy: () => null, lazyConnect: true };
  const client = cluster ? new ioredis.Cluster([url], { redisOptions: options, clusterRetryStrategy: () => null }) : new ioredis.Redis(url, options);
  client.on('error', () => {});
  try {
    await client.connect();
    if (cluster) await new Promise((resolve, reject) => (client.status === 'ready' ? resolve(null) : (client.once('ready', resolve), client.once('end', () => reject(new Error('cluster connection ended'))))));
  } catch (err) {
    client.disconnect();
    throw new CliError(`cannot reach Redis at ${url}: ${(err as Error).message}`, 3);
  }
  return client;
}

interface LimitFlags {
  algo: AlgoName;
  limit: number;
  period?: number;
  burst?: number;
  unit?: string;
  name: string;
  scopedBy?: string;
}

/** A limit from the command line: each parameter of the algorithm from its option (a required calendar unit defaults to its first value). */
function limitFrom(o: LimitFlags): LimitSpec {
  const spec: Record<string, unknown> = { name: o.name, algo: o.algo };
  for (const p of algorithms[o.algo].params) {
    const flag = PARAM_FLAGS[p.prop];
    if (flag === undefined) continue;
    const value = o[flag] ?? (p.type === 'enum' && p.required ? p.values![0] : undefined);
    if (value !== undefined) spec[p.prop] = value;
    else if (p.required) throw new CliError(`--${flag} is required for --algo ${o.algo}`, 2);
  }
  if (o.scopedBy) spec.scope = o.scopedBy;
  return spec as LimitSpec;
}

/** The subject options every command that takes a subject shares (peek, reset, top). */
interface SubjectOptions {
  hashTag?: string;
  scope?: Record<string, string>;
  scopedBy?: string;
}

function scopePair(raw: string, previous: Record<string, string> | undefined): Record<string, string> {
  const eq = raw.indexOf('=');
  if (eq <= 0) throw new CommanderArgumentError(`--scope must be name=value (e.g. --scope org=acme), got ${JSON.stringify(raw)}`);
  const scopes = { ...previous };
  scopes[raw.slice(0, eq)] = raw.slice(eq + 1);
  return scopes;
}

const subjectOptions = (c: Command, what: string) =>
  c
    .option('--hash-tag <tag>', `${what}'s hash tag (the { } part of its keys; default: the id)`)
    .option('--scope <name=value>', `${what}'s scopes, e.g. --scope org=acme (repeatable)`, scopePair)
    .option('--scoped-by <scope>', "the limit is keyed by this scope of the subject (the limit's scope option), e.g. org");

/** A subject from the command line: an id, or { id, hashTag, scopes } when those are given. */
function subjectFrom(id: string, o: SubjectOptions): Subject {
  if (o.hashTag === undefined && o.scope === undefined) return id;
  return { id, ...(o.hashTag !== undefined ? { hashTag: o.hashTag } : {}), ...(o.scope ? { scopes: o.scope } : {}) };
}

/** Runs a glob pattern over every primary's keys in bounded SCAN steps (never KEYS). */
async function* scanKeys(client: Awaited<ReturnType<typeof connect>>, cluster: boolean, pattern: string, maxKeys: number): AsyncGenerator<string> {
  const nodes = cluster ? (client as import('ioredis').Cluster).nodes('master') : [client as import('ioredis').Redis];
  let seen = 0;
  for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 200);
      cursor = next;
      for (const key of keys) {
        if (seen++ >= maxKeys) return;
        yield key;
      }
    } while (cursor !== '0');
  }
}

/** A literal inside a SCAN MATCH pattern: glob characters escaped. */
const globLiteral = (s: string) => s.replace(/[*?[\]\\]/g, '\\$&');
const regexLiteral = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** A read-only peek of one key with the limit's options, by the algorithm's peek script. */
async function peekKey(client: object, limit: LimitSpec, key: string): Promise<{ remaining: number; resetAfterMs: number }> {
  const { peek } = compileLimit(limit, 1);
  const r = (await runScript(client as RedisClientLike, peek.def, [key], argvWith(peek, 1))) as number[];
  return { remaining: r[decisionReply.remaining]!, resetAfterMs: r[decisionReply.resetAfterMs]! };
}

/** Limit names as the limiter accepts them (they are part of every key). */
const LIMIT_NAME = /^[A-Za-z0-9_-]{1,64}$/;

function print(json: boolean, value: unknown, text: () => string): void {
  process.stdout.write(json ? JSON.stringify(value, null, 2) + '\n' : text() + '\n');
}

/** A live counter on stderr while something takes seconds (only on a terminal). */
function progress(label: string) {
  const tty = process.stderr.isTTY;
  let last = 0;
  return {
    tick(done: number, total?: number) {
      const now = Date.now();
      if (!tty || now - last < 100) return;
      last = now;
      process.stderr.write(`\r${label}: ${done}${total ? ` / ${total}` : ''}   `);
    },
    end() {
      if (tty) process.stderr.write('\r\x1b[K');
    },
  };
}

/** --algo and the options of its parameters (--period, --burst, --unit), from the algorithm table. */
function algoOptions(c: Command): Command {
  const period = takers('periodMs');
  const burst = takers('burst');
  const unit = takers('unit');
  const units = algorithms[unit.yes[0] as AlgoName]?.params.find((p) => p.prop === 'unit')?.values ?? [];
  return c
    .addOption(new Option('--algo <algo>', 'algorithm').choices(algoNames).default(algoNames[0]))
    .option('--period <ms>', `period in ms (${period.no.length ? `all but ${period.no.join(' / ')}` : 'every algorithm'})`, int('--period', 1))
    .option('--burst <n>', `${burst.yes.join(' / ')} capacity`, int('--burst', 1))
    .addOption(new Option('--unit <unit>', `${unit.yes.join(' / ')} period`).choices(units));
}

const limitOptions = (c: Command) =>
  algoOptions(c.requiredOption('--limit <n>', `units per period (per calendar unit for ${takers('unit').yes.join(' / ')})`, int('--limit', 1)))
    .option('--name <name>', 'the limit name in the keys', 'default')
    .option('--prefix <prefix>', 'key prefix', 'rl')
    .option('--url <url>', 'Redis URL', process.env.REDIS_URL ?? 'redis://127.0.0.1:6379')
    .option('--cluster', 'the URL is a Redis Cluster node')
    .option('--json', 'JSON output');

export function program(): Command {
  const version = (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
  const cli = new Command('redlimit').description('redlimit: distributed rate limiting on Redis — scripts, state and simulations').version(version).showHelpAfterError();
  cli.exitOverride();

  cli
    .command('scripts')
    .description('list every script: name, version, SHA1, read-only')
    .option('--json', 'JSON output')
    .action((o: { json?: boolean }) => {
      const rows = b.allScripts.map((d) => ({ name: d.name, version: d.version, sha1: d.sha1, readOnly: d.readOnly }));
      print(!!o.json, rows, () => rows.map((r) => `${r.name.padEnd(22)} v${r.version}  ${r.sha1}${r.readOnly ? '  read-only' : ''}`).join('\n'));
    });

  cli
    .command('show <script>')
    .description("a script's contract: keys, arguments (ranges, defaults), reply, checks")
    .option('--json', 'JSON output')
    .action((name: string, o: { json?: boolean }) => {
      const d = scriptByName(name);
      const contract = { name: d.name, version: d.version, sha1: d.sha1, summary: d.summary, readOnly: d.readOnly, keys: d.keys, args: d.args, each: d.each ?? null, returns: d.returns, checks: d.checks };
      print(!!o.json, contract, () =>
        [
          `${d.name} v${d.version} (${d.sha1})${d.readOnly ? ' read-only' : ''}`,
          d.summary,
          '',
          ...d.keys.map((k, i) => `KEYS[${i + 1}]${k.variadic ? '…' : ''}  ${k.name}: ${k.doc}`),
          ...d.args.map((a, i) => `ARGV[${i + 1}]  ${a.name} ${a.type}${a.required ? ' required' : ''}${a.min !== undefined ? ` ${a.min}..${a.max}` : ''}${a.values ? ` ${a.values.join('|')}` : ''}${a.default !== undefined ? ` default=${typeof a.default === 'object' ? a.default.arg : a.default}` : ''}: ${a.doc}`),
          ...(d.each ? [`then per ${d.each.name} item: ${d.each.args.map((a) => a.name).join(' ')}`] : []),
          '',
          ...d.returns.map((r, i) => `reply[${i + 1}]  ${r.name} ${r.type}: ${r.doc}`),
          ...(d.each ? [`then per item: ${d.each.returns.map((r) => r.name).join(' ')}`] : []),
          ...d.checks.map((c) => `check ${c.name}: ${c.doc}`),
        ].join('\n'),
      );
    });

  cli
    .command('load')
    .description('load every script into Redis (EVAL cache on every primary), or the Functions library with --functions')
    .option('--url <url>', 'Redis URL', process.env.REDIS_URL ?? 'redis://127.0.0.1:6379')
    .option('--cluster', 'the URL is a Redis Cluster node: load on every primary')
    .option('--functions', 'FUNCTION LOAD REPLACE the library instead')
    .option('--json', 'JSON output')
    .action(async (o: { url: string; cluster?: boolean; functions?: boolean; json?: boolean }) => {
      const client = await connect(o.url, !!o.cluster);
      try {
        if (o.functions) {
          const nodes = o.cluster ? (client as import('ioredis').Cluster).nodes('master') : [client as import('ioredis').Redis];
          await Promise.all(nodes.map((n) => n.function('LOAD', 'REPLACE', functionsLibrary)));
          print(!!o.json, { loaded: 'functions', nodes: nodes.length }, () => `loaded the Functions library on ${nodes.length} node(s)`);
        } else {
          await preload(client, b.allScripts);
          print(!!o.json, { loaded: b.allScripts.map((d) => d.sha1) }, () => `loaded ${b.allScripts.length} scripts`);
        }
      } finally {
        client.disconnect();
      }
    });

  subjectOptions(limitOptions(cli.command('peek <subject>').description("a subject's state under a limit, without consuming")), "the subject").action(
    async (id: string, o: Parameters<typeof limitFrom>[0] & SubjectOptions & { prefix: string; url: string; cluster?: boolean; json?: boolean }) => {
      const limit = limitFrom(o);
      const subject = subjectFrom(id, o);
      limitKey(o.prefix, resolveSubject(subject), o.name, o.scopedBy ?? null); // a malformed subject is bad input, before any connection
      const client = await connect(o.url, !!o.cluster);
      const rl = createRateLimiter({ redis: client, prefix: o.prefix, limits: limit, onRedisFailure: 'closed', throwWhenFailedClosed: true, functions: false, timeoutMs: 5_000 });
      try {
        const d = await rl.peek(subject);
        const l = d.limits[0]!;
        print(!!o.json, { subject, ...l }, () => `${id}: ${l.remaining} of ${l.limit} left; full again in ${l.resetAfterMs} ms`);
      } finally {
        await rl.close();
        client.disconnect();
      }
    },
  );

  subjectOptions(
    cli
      .command('reset <subject>')
      .description("put a subject back to full: deletes its state under the named limits (no limit options needed), and with --block lifts its block")
      .option('--name <name>', 'a limit name in the keys (repeatable)', (v: string, prev: string[] | undefined) => [...(prev ?? []), v])
      .option('--block', "also lift the subject's block")
      .option('--prefix <prefix>', 'key prefix', 'rl')
      .option('--url <url>', 'Redis URL', process.env.REDIS_URL ?? 'redis://127.0.0.1:6379')
      .option('--cluster', 'the URL is a Redis Cluster node')
      .option('--json', 'JSON output'),
    'the subject',
  ).action(async (id: string, o: SubjectOptions & { name?: string[]; block?: boolean; prefix: string; url: string; cluster?: boolean; json?: boolean }) => {
    const names = o.name ?? ['default'];
    for (const n of names) if (!LIMIT_NAME.test(n)) throw new CliError(`--name must be letters, digits, _ and - (at most 64), got ${JSON.stringify(n)}`, 2);
    const subject = subjectFrom(id, o);
    const resolved = resolveSubject(subject);
    const keys = names.map((n) => limitKey(o.prefix, resolved, n, o.scopedBy ?? null));
    if (o.block) keys.push(blockKey(o.prefix, resolved));
    const client = await connect(o.url, !!o.cluster);
    try {
      const { deleted } = await b.reset(client, { keys });
      print(!!o.json, { subject, keys, deleted, reset: true }, () => `${id}: back to full (${deleted} of ${keys.length} key(s) held state: ${keys.join(', ')})`);
    } finally {
      client.disconnect();
    }
  });

  const inspect = cli
    .command('inspect <key>')
    .description("decode a redlimit key: its raw state and TTL; with the limit's options, remaining and reset exactly (through the peek script)")
    .option('--limit <n>', 'units per period', int('--limit', 1));
  algoOptions(inspect)
    .option('--url <url>', 'Redis URL', process.env.REDIS_URL ?? 'redis://127.0.0.1:6379')
    .option('--cluster', 'the URL is a Redis Cluster node')
    .option('--json', 'JSON output')
    .action(async (key: string, o: Partial<Parameters<typeof limitFrom>[0]> & { url: string; cluster?: boolean; json?: boolean }) => {
      const client = await connect(o.url!, !!o.cluster);
      try {
        const type = (await client.type(key)) as string;
        const pttl = await client.pttl(key);
        let raw: unknown = null;
        let decoded: Record<string, unknown> = {};
        if (type === 'string') {
          raw = await client.get(key);
          const gcra = /^(\d+):(\d+)$/.exec(String(raw));
          if (gcra) decoded = { kind: 'gcra', theoreticalArrival: new Date(Number(gcra[1])).toISOString(), fractionOfMs: `${gcra[2]}/limit` };
          else if (/^\d+$/.test(String(raw))) decoded = { kind: 'counter or block', value: Number(raw) };
          else decoded = { kind: 'window counters', value: raw };
        } else if (type === 'hash') {
          raw = await client.hgetall(key);
          decoded = { kind: 'token_bucket', ...(raw as object) };
        } else if (type === 'zset') {
          const entries = await client.zrange(key, 0, -1, 'WITHSCORES');
          raw = entries;
          decoded = { kind: 'sliding_log or concurrency', entries: entries.length / 2, oldest: entries[1] ? new Date(Number(entries[1])).toISOString() : null };
        } else if (type === 'none') decoded = { kind: 'absent', meaning: 'no state: the subject is at full' };
        let exact: unknown = null;
        if (o.limit !== undefined && o.algo) {
          exact = await peekKey(client, limitFrom({ ...o, name: 'inspect' } as Parameters<typeof limitFrom>[0]), key);
        }
        const absent = type === 'none';
        print(!!o.json, { key, type, absent, pttlMs: pttl, raw, decoded, exact }, () =>
          [absent ? `${key}: absent — no state, so the subject is at full` : `${key}: ${type}, expires in ${pttl} ms`, `raw: ${JSON.stringify(raw)}`, `decoded: ${JSON.stringify(decoded)}`, ...(exact ? [`exact: ${JSON.stringify(exact)}`] : ['(give --algo, --limit and --period for the exact remaining and reset)'])].join('\n'),
        );
      } finally {
        client.disconnect();
      }
    });

  subjectOptions(
    limitOptions(cli.command('top').description('the subjects closest to their limit: SCAN in bounded steps (never KEYS), then a read-only peek of each key'))
      .option('--count <n>', 'how many to show', int('--count', 1), 10)
      .option('--max-keys <n>', 'stop after scanning this many keys', int('--max-keys', 1), 10_000),
    'only subjects under this',
  ).action(async (o: Parameters<typeof limitFrom>[0] & SubjectOptions & { prefix: string; url: string; cluster?: boolean; json?: boolean; count: number; maxKeys: number }) => {
    const limit = limitFrom(o);
    if (o.scope) throw new CliError('top lists subjects: use --hash-tag and --scoped-by to choose them, not --scope', 2);
    if (o.hashTag !== undefined) resolveSubject({ id: 'top', hashTag: o.hashTag });
    const client = await connect(o.url, !!o.cluster);
    const bar = progress('scanning');
    try {
      // Keys of this limit (src/client/keys.ts): `${prefix}:{${id}}:${name}` (tag = id),
      // `${prefix}:{${tag}}:${name}:${id}`, or `${prefix}:{${tag}}:${name}:${scopeValue}` when scoped.
      // Parts have no braces, so the first } closes the tag.
      const tag = o.hashTag === undefined ? '*' : globLiteral(o.hashTag);
      const pattern = `${globLiteral(o.prefix)}:{${tag}}:${globLiteral(o.name)}*`;
      const shape = new RegExp(`^${regexLiteral(o.prefix)}:\\{([^}]*)\\}:${regexLiteral(o.name)}(?::(.+))?$`, 's');
      const found: { subject: string; hashTag: string; scope?: Record<string, string>; key: string; remaining: number; limit: number; resetAfterMs: number }[] = [];
      let scanned = 0;
      for await (const key of scanKeys(client, !!o.cluster, pattern, o.maxKeys)) {
        scanned++;
        bar.tick(scanned);
        const m = shape.exec(key);
        if (!m) continue; // another limit whose name starts with this one
        const [, keyTag, rest] = m as unknown as [string, string, string | undefined];
        // A scoped limit's keys always end in the scope value; an id's key ends in the id only
        // under a tag other than the id.
        if (o.scopedBy && rest === undefined) continue;
        const who = o.scopedBy ? { subject: `${o.scopedBy}=${rest}`, scope: { [o.scopedBy]: rest! } } : { subject: rest ?? keyTag };
        const r = await peekKey(client, limit, key);
        found.push({ ...who, hashTag: keyTag, key, remaining: r.remaining, limit: limit.limit, resetAfterMs: r.resetAfterMs });
      }
      bar.end();
      found.sort((x, y) => x.remaining / x.limit - y.remaining / y.limit);
      const top = found.slice(0, o.count);
      print(!!o.json, { scanned, top }, () =>
        [`scanned ${scanned} key(s)`, ...top.map((t) => `${(t.subject === t.hashTag ? t.subject : `${t.subject} {${t.hashTag}}`).padEnd(32)} ${t.remaining} of ${t.limit} left, full in ${t.resetAfterMs} ms`)].join('\n'),
      );
    } finally {
      client.disconnect();
    }
  });

  cli
    .command('export')
    .description('write the scripts for other tooling: lua (one file per script), functions (the library), manifest, python (the binding)')
    .addOption(new Option('--format <format>', 'what to write').choices(['lua', 'functions', 'manifest', 'python']).makeOptionMandatory())
    .requiredOption('--out <dir>', 'directory to write into')
    .option('--json', 'JSON output')
    .action((o: { format: string; out: string; json?: boolean }) => {
      mkdirSync(o.out, { recursive: true });
      const root = packageRoot();
      const written: string[] = [];
      const write = (name: string, content: string) => {
        writeFileSync(join(o.out, name), content);
        written.push(join(o.out, name));
      };
      if (o.format === 'lua') for (const d of b.allScripts) write(`${d.name}.lua`, d.source);
      if (o.format === 'functions') write('redlimit.lua', functionsLibrary);
      if (o.format === 'manifest') write('manifest.json', readFileSync(join(root, 'generated', 'manifest.json'), 'utf8'));
      if (o.format === 'python') write('redlimit_scripts.py', readFileSync(join(root, 'generated', 'python', 'redlimit_scripts.py'), 'utf8'));
      print(!!o.json, { written }, () => `wrote ${written.length} file(s) to ${o.out}`);
    });

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
  registerPolicyCommands(cli);
  return cli;
}

/** The package root (where generated/ lives): two levels up from src/cli, four from dist/esm/src/cli. */
function packageRoot(): string {
  const here = import.meta.dirname;
  for (const up of [['..', '..'], ['..', '..', '..', '..']]) {
    const root = join(here, ...up);
    if (existsSync(join(root, 'generated', 'manifest.json'))) return root;
  }
  throw new CliError('cannot find the package files (generated/manifest.json)', 1);
}

export async function main(argv: string[]): Promise<number> {
  try {
    await program().parseAsync(argv);
    return 0;
  } catch (err) {
    const e = err as { code?: string; exitCode?: number; message: string };
    if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return 0;
    if (typeof e.code === 'string' && e.code.startsWith('commander.')) return 2; // commander printed the usage error
    if (err instanceof CliError) {
      process.stderr.write(`redlimit: ${err.message}\n`);
      return err.exitCode;
    }
    if (err instanceof RedlimitError) {
      process.stderr.write(`redlimit: ${err.message}\n`);
      return err.code === 'ERR_REDIS_UNAVAILABLE' ? 3 : 2;
    }
    process.stderr.write(`redlimit: ${e.message}\n`);
    return 1;
  }
}

if (process.argv[1] && /cli[/\\]main\.(js|ts)$/.test(realpathSync(process.argv[1]))) {
  void main(process.argv).then((code) => process.exit(code));
}
