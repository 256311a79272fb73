/** `peek`, `reset`, `inspect` and `top`: a subject's or a key's state in Redis, read-only except reset. */
import { Command } from 'commander';
import * as b from '../../generated/index.js';
import { decisionReply } from '../../generated/index.js';
import type { LimitSpec } from '../client/config.js';
import { blockKey, limitKey, resolveSubject, subjectKey } from '../client/keys.js';
import { createRateLimiter } from '../client/limiter.js';
import { argvWith, compileLimit } from '../client/plan.js';
import { runScript, type RedisClientLike } from '../runtime/index.js';
import { connect } from './connect.js';
import { LIMIT_NAME, algoOptions, int, limitFrom, limitOptions, subjectFrom, subjectOptions, type SubjectOptions } from './options.js';
import { CliError, print, progress } from './output.js';
import {
  StateDecodeError,
  decodeBlock,
  decodeConcurrency,
  decodeFixedWindow,
  decodeSlidingLog,
  decodeSlidingWindow,
  decodeState,
  decodeTokenBucket,
  decodeTokenBucketHash,
  type AlgoName as StateAlgo,
  type DecodedState,
} from '../twin/state.js';

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

/** A time in ms as an ISO date, or the number itself past what a Date holds. */
function iso(ms: number): string | number {
  return Math.abs(ms) <= 8.64e15 ? new Date(ms).toISOString() : ms;
}

/** A decoded state (src/twin/state.ts) as `inspect` shows it. */
function describe(d: DecodedState | undefined): Record<string, unknown> {
  if (!d) return { kind: 'absent', meaning: 'no state: the subject is at full' };
  const form = d.form;
  switch (d.algo) {
    case 'gcra':
      return { kind: 'gcra', form, theoreticalArrival: iso(d.tatMs), fractionOfMs: `${d.tatNum}/limit` };
    case 'token_bucket':
      return { kind: 'token_bucket', form, tokens: d.tokens, frac: form === 'packed' ? 0 : `${d.frac}/period_ms`, countedAt: iso(d.tsMs) };
    case 'fixed_window':
      return d.form === 'packed'
        ? { kind: 'fixed_window', form, count: d.count, windowStartMod2e22: d.startTag }
        : { kind: 'fixed_window', form, windowStart: iso(d.start), count: d.count };
    case 'quota':
      return { kind: 'quota', form, periodStart: iso(d.start), count: d.count };
    case 'sliding_window':
      return d.form === 'packed'
        ? { kind: 'sliding_window', form, current: d.cur, previous: d.prev, windowStartMod2e21: d.startTag }
        : { kind: 'sliding_window', form, windowStart: iso(d.start), current: d.cur, previous: d.prev };
    case 'sliding_log': {
      const oldest = d.entries[0]!;
      const newest = d.entries[d.entries.length - 1]!;
      return { kind: 'sliding_log', entries: d.entries.length, oldest: iso(oldest.ts), units: newest.cum - oldest.cum + oldest.cost };
    }
    case 'concurrency': {
      return { kind: 'concurrency', entries: d.leases.size, oldest: iso([...d.leases.values()].reduce((x, y) => Math.min(x, y))) };
    }
    case 'block':
      return { kind: 'block', until: iso(d.untilMs) };
  }
}

/**
 * `raw` described by the first decoding that takes it (src/twin/state.ts); a value none takes is
 * shown as unknown, with the first decoder's reason.
 */
function describeFirst(raw: unknown, attempts: (() => DecodedState | undefined)[], relabel?: (d: DecodedState) => Record<string, unknown> | undefined): Record<string, unknown> {
  let first: StateDecodeError | undefined;
  for (const attempt of attempts) {
    let d: DecodedState | undefined;
    try {
      d = attempt();
    } catch (err) {
      if (!(err instanceof StateDecodeError)) throw err;
      first ??= err;
      continue;
    }
    return (d && relabel?.(d)) ?? describe(d);
  }
  return { kind: 'unknown', value: raw, error: first!.message };
}

const STRING_ALGOS: readonly string[] = ['gcra', 'token_bucket', 'fixed_window', 'quota', 'sliding_window'];

/**
 * A string state decoded as the algorithm given by --algo (default gcra) stores it; a value that
 * algorithm never writes is tried as the forms that name their algorithm (a token bucket's, a
 * sliding window's "start:cur:prev"), then as any window counter or block.
 */
function describeString(raw: string, algo: string, nowMs?: number): Record<string, unknown> {
  const attempts: (() => DecodedState | undefined)[] = [() => decodeTokenBucket(raw, nowMs), () => decodeSlidingWindow(raw), () => decodeFixedWindow(raw), () => decodeBlock(raw)];
  if (STRING_ALGOS.includes(algo)) attempts.unshift(() => decodeState(algo as StateAlgo, raw, nowMs));
  return describeFirst(raw, attempts, (d) => {
    if (d.algo === algo) return undefined;
    // An integer or "start:count" that --algo does not write carries no algorithm of its own.
    if (d.algo === 'fixed_window' && d.form === 'text') return { kind: 'window counter', form: 'text', windowStart: iso(d.start), count: d.count };
    if (d.algo === 'fixed_window' || d.algo === 'block' || (d.algo === 'sliding_window' && d.form === 'packed')) return { kind: 'counter or block', value: Number(raw) };
    return undefined;
  });
}

/**
 * A subject's key of layout 'subject' (`…:{id}:m+h+d`, the tiers scripts): its limits' states,
 * `|`-separated in the order the names give them, each decoded as a string state (its algorithm
 * is not in the key: each field by the first decoding that takes it); null when `key` does not
 * name several limits or the value has another number of fields.
 */
function describeSubject(key: string, raw: string, nowMs: number): Record<string, unknown> | null {
  const names = /\}:([A-Za-z0-9_-]+(?:\+[A-Za-z0-9_-]+)+)(?::[^:]*)?$/.exec(key)?.[1]?.split('+');
  const fields = raw.split('|');
  if (!names || fields.length !== names.length) return null;
  const limits: Record<string, unknown> = {};
  // In a subject's key no window is packed and no block is held: an integer field is a gcra's.
  const field = (f: string) => (f === '' ? { kind: 'absent', meaning: 'no state: this limit is at full' } : describeString(f, /^\d+$/.test(f) ? 'gcra' : '', nowMs));
  names.forEach((n, i) => (limits[n] = field(fields[i]!)));
  return { kind: 'subject', meaning: "every limit of one subject (layout 'subject')", limits };
}

/** A sorted set: a sliding log's entries when its members have their shape, else concurrency leases. */
function describeZset(entries: string[]): Record<string, unknown> {
  return describeFirst(entries, [() => decodeSlidingLog(entries), () => decodeConcurrency(entries)]);
}

/** A read-only peek of one key with the limit's options, by the algorithm's peek script. */
async function peekKey(client: object, limit: LimitSpec, key: string): Promise<{ remaining: number; resetAfterMs: number }> {
  const { peek } = compileLimit(limit, 1);
  const r = (await runScript(client as RedisClientLike, peek.def, [key], argvWith(peek, 1))) as number[];
  return { remaining: r[decisionReply.remaining]!, resetAfterMs: r[decisionReply.resetAfterMs]! };
}

/**
 * `reset --subject-limits m,h,d`: a limiter with layout 'subject' holds every limit of a subject in
 * one key (`prefix:{id}:m+h+d`); the limits named by --name (default: all) are reset there through
 * tiers_reset (the others keep their state and the key its expiry), all of them by deleting the key.
 */
async function resetSubjectKey(id: string, o: SubjectOptions & { name?: string[]; block?: boolean; subjectLimits: string; prefix: string; url: string; cluster?: boolean; json?: boolean }): Promise<void> {
  const all = o.subjectLimits.split(',');
  for (const n of all) if (!LIMIT_NAME.test(n)) throw new CliError(`--subject-limits must be comma-separated limit names (letters, digits, _ and -, at most 64 each), got ${JSON.stringify(o.subjectLimits)}`, 2);
  if (new Set(all).size !== all.length) throw new CliError(`--subject-limits names a limit twice: ${JSON.stringify(o.subjectLimits)}`, 2);
  if (all.length > 16) throw new CliError(`--subject-limits: a subject's key holds at most 16 limits, got ${all.length}`, 2);
  if (o.block) throw new CliError("--block: a limiter with one key per subject has no blocks (a limiter with blocks keeps a key per limit)", 2);
  if (o.scopedBy !== undefined) throw new CliError("--scoped-by: a limiter with layout 'subject' has no scoped limits", 2);
  const names = o.name ?? all;
  const positions = names.map((n) => {
    const at = all.indexOf(n);
    if (at < 0) throw new CliError(`--name ${JSON.stringify(n)} is not one of --subject-limits (${all.join(', ')})`, 2);
    return at + 1;
  });
  const resolved = resolveSubject(subjectFrom(id, o));
  const key = subjectKey(o.prefix, resolved, all.join('+'));
  const client = await connect(o.url, !!o.cluster);
  try {
    const every = new Set(positions).size === all.length;
    // tiers_reset: the key goes when no state is left; adopt: the named limits' own keys (a key
    // per limit, the layout before) go too, so a later decision does not take their states over.
    const held = (await b.tiersReset(client, { count: all.length, limits: [...new Set(positions)].join(','), adopt: all.join('+'), keys: [key] })).reset;
    const reset = all.filter((_, j) => positions.includes(j + 1));
    print(!!o.json, { subject: id, keys: [key], limits: reset, held, reset: true }, () =>
      every ? `${id}: back to full (${held ? `${held} limit(s) held state` : 'no limit held state'})` : `${id}: ${reset.join(', ')} back to full in ${key} (${held} of them held state)`,
    );
  } finally {
    client.disconnect();
  }
}

/** Registers `peek`, `reset`, `inspect` and `top` on the program. */
export function registerStateCommands(cli: Command): void {
  subjectOptions(limitOptions(cli.command('peek <subject>').description("a subject's state under a limit's own key (a key per limit), without consuming; a limiter of several limits in one key per subject (layout 'subject', the default 'auto' for such limits): redlimit inspect '<prefix>:{<id>}:m+h+d' decodes them")), "the subject").action(
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
      .description("put a subject back to full: deletes its state under the named limits' own keys (no limit options needed), and with --block lifts its block; a limiter of several limits in one key per subject (the default 'auto' for such limits) needs --subject-limits")
      .option('--name <name>', 'a limit name in the keys (repeatable)', (v: string, prev: string[] | undefined) => [...(prev ?? []), v])
      .option('--block', "also lift the subject's block")
      .option('--subject-limits <names>', "the limiter keeps every limit of a subject in one key (layout 'subject', or 'auto' with several gcra/token_bucket/window/quota limits): these names in the limiter's order, comma-separated (e.g. m,h,d); --name then picks which of them to reset (default: all; their own keys of a key per limit go too)")
      .option('--prefix <prefix>', 'key prefix', 'rl')
      .option('--url <url>', 'Redis URL', process.env.REDIS_URL ?? 'redis://127.0.0.1:6379')
      .option('--cluster', 'the URL is a Redis Cluster node')
      .option('--json', 'JSON output'),
    'the subject',
  ).action(async (id: string, o: SubjectOptions & { name?: string[]; block?: boolean; subjectLimits?: string; prefix: string; url: string; cluster?: boolean; json?: boolean }) => {
    if (o.subjectLimits !== undefined) return resetSubjectKey(id, o as SubjectOptions & { name?: string[]; block?: boolean; subjectLimits: string; prefix: string; url: string; cluster?: boolean; json?: boolean });
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
          // The server's clock: a token bucket's compact form keeps its count time modulo a power of ten, read back against the clock that wrote it.
          const [sec, usec] = (await client.call('TIME')) as [string, string];
          const nowMs = Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
          decoded = describeSubject(key, String(raw), nowMs) ?? describeString(String(raw), o.algo ?? 'gcra', nowMs);
        } else if (type === 'hash') {
          raw = await client.hgetall(key);
          decoded = describeFirst(raw, [() => decodeTokenBucketHash(raw as Record<string, string>)]);
        } else if (type === 'zset') {
          const entries = await client.zrange(key, 0, -1, 'WITHSCORES');
          raw = entries;
          decoded = describeZset(entries);
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
}
