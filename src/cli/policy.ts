/**
 * `redlimit policy …`: the policy store from the command line — set, get, list, history, diff,
 * rollback, remove and resolve, each with `--json`. Registered on the main program by
 * registerPolicyCommands(cli). Errors are RedlimitErrors (exit 2 for a refused policy, 3 when
 * Redis cannot be reached), as main() maps them.
 */
import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError as CommanderArgumentError, Option } from 'commander';
import { RedisUnavailableError } from '../errors.js';
import { resolve, expand, type Layer } from '../policy/resolve.js';
import { parseEntry, type PolicyInput, type PolicyVersion } from '../policy/document.js';
import { PolicyStore } from '../policy/store.js';
import type { RedisClientLike } from '../runtime/index.js';

export interface PolicyCliIO {
  out(text: string): void;
}

interface Common {
  url: string;
  prefix: string;
  json?: boolean;
}

const common = (c: Command) =>
  c
    .option('--url <url>', 'Redis URL', process.env.REDIS_URL ?? 'redis://127.0.0.1:6379')
    .option('--prefix <prefix>', 'key prefix', 'rl')
    .option('--json', 'JSON output');

const change = (c: Command) =>
  c
    .requiredOption('--author <who>', 'who makes the change (recorded)')
    .option('--reason <why>', 'why (recorded)')
    .addOption(new Option('--carry-over <rule>', 'what the state of the limits it sets does').choices(['as-is', 'reset', 'proportional']).default('as-is'))
    .option('--if-version <n>', 'apply only if the global policy version is still n', positive('--if-version', 0));

function positive(name: string, min = 1) {
  return (raw: string): number => {
    if (!/^\d+$/.test(raw) || Number(raw) < min) throw new CommanderArgumentError(`${name} must be a whole number >= ${min}, got ${JSON.stringify(raw)}`);
    return Number(raw);
  };
}

async function withStore<T>(o: Common, run: (store: PolicyStore) => Promise<T>): Promise<T> {
  const { Redis } = await import('ioredis');
  const client = new Redis(o.url, { enableOfflineQueue: true, maxRetriesPerRequest: 0, connectTimeout: 3_000, retryStrategy: () => null, lazyConnect: true });
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (err) {
    client.disconnect();
    throw new RedisUnavailableError(`cannot reach Redis at ${o.url}: ${(err as Error).message}`);
  }
  try {
    return await run(new PolicyStore(client as unknown as RedisClientLike, o.prefix));
  } finally {
    client.disconnect();
  }
}

function describeVersion(v: PolicyVersion): string {
  const when = new Date(v.timeMs).toISOString();
  return `v${v.version} ${v.op} by ${v.author} at ${when}${v.carryOver !== 'as-is' ? ` (${v.carryOver})` : ''}${v.reason ? `: ${v.reason}` : ''}`;
}

function describePolicy(p: PolicyInput | null): string[] {
  if (!p) return ['  (removed)'];
  const out: string[] = [];
  if (p.parent) out.push(`  parent ${p.parent}`);
  if (p.scale !== undefined) out.push(`  scale x${p.scale}`);
  for (const l of p.limits ?? []) out.push(`  ${l.name}: ${JSON.stringify(l)}`);
  for (const r of p.remove ?? []) out.push(`  remove ${r}`);
  return out.length ? out : ['  (empty)'];
}

/** The policy document from --doc, --file (or - for stdin), and the shorthand options. */
function documentFrom(o: { doc?: string; file?: string; scale?: string; parent?: string; remove?: string }): PolicyInput {
  let doc: PolicyInput = {};
  const text = o.file !== undefined ? readFileSync(o.file === '-' ? 0 : o.file, 'utf8') : o.doc;
  if (text !== undefined) {
    try {
      doc = JSON.parse(text) as PolicyInput;
    } catch (err) {
      throw new CommanderArgumentError(`the policy is not JSON: ${(err as Error).message}`);
    }
  }
  if (o.scale !== undefined) doc.scale = Number(o.scale);
  if (o.parent !== undefined) doc.parent = o.parent;
  if (o.remove !== undefined) doc.remove = o.remove.split(',').filter(Boolean);
  return doc;
}

export function registerPolicyCommands(cli: Command, io: PolicyCliIO = { out: (t) => process.stdout.write(t) }): Command {
  const print = (json: boolean | undefined, value: unknown, lines: () => string[]) => io.out(json ? `${JSON.stringify(value, null, 2)}\n` : `${lines().join('\n')}\n`);
  const policy = cli.command('policy').description('limits that change without a redeploy: named policies in Redis, versioned');

  change(common(policy.command('set <name>').description('store a new version of a policy (validated; nothing stored if refused)')))
    .option('--doc <json>', 'the policy: {"limits":[...],"remove":[...],"scale":0.8,"parent":"default"}')
    .option('--file <path>', 'read the policy from a file (- for stdin)')
    .option('--scale <factor>', 'scale every limit resolved up to this layer (e.g. 0.8)')
    .option('--parent <name>', 'inherit from this policy')
    .option('--remove <names>', 'limit names this policy takes away (comma list)')
    .action(async (name: string, o: Common & { author: string; reason?: string; carryOver: 'as-is' | 'reset' | 'proportional'; ifVersion?: number; doc?: string; file?: string; scale?: string; parent?: string; remove?: string }) => {
      const doc = documentFrom(o);
      const version = await withStore(o, (s) => s.set(name, doc, { author: o.author, ...(o.reason ? { reason: o.reason } : {}), carryOver: o.carryOver, ...(o.ifVersion !== undefined ? { ifVersion: o.ifVersion } : {}) }));
      print(o.json, { name, version }, () => [`${name}: stored as version ${version}`]);
    });

  common(policy.command('get <name>').description('the current version of a policy')).action(async (name: string, o: Common) => {
    const v = await withStore(o, (s) => s.get(name));
    print(o.json, v, () => (v ? [`${name} ${describeVersion(v)}`, ...describePolicy(v.policy)] : [`${name}: no such policy`]));
  });

  common(policy.command('list').description('the live policies')).action(async (o: Common) => {
    const { names, version } = await withStore(o, async (s) => ({ names: await s.list(), version: await s.version() }));
    print(o.json, { version, names }, () => [`policies at version ${version}:`, ...names.map((n) => `  ${n}`)]);
  });

  common(policy.command('history <name>').description("a policy's versions, newest first"))
    .option('--limit <n>', 'at most n versions', positive('--limit'), 100)
    .action(async (name: string, o: Common & { limit: number }) => {
      const h = await withStore(o, (s) => s.history(name, o.limit));
      print(o.json, h, () => (h.length ? h.map(describeVersion) : [`${name}: no history`]));
    });

  common(policy.command('diff <name> <from> <to>').description('what changed between two versions of a policy')).action(async (name: string, from: string, to: string, o: Common) => {
    const d = await withStore(o, (s) => s.diff(name, positive('<from>')(from), positive('<to>')(to)));
    print(o.json, d, () => [
      `${name}: v${d.from} -> v${d.to}`,
      ...d.limits.map((l) => `  ${l.change === 'added' ? '+' : l.change === 'removed' ? '-' : '~'} ${l.name}${l.from ? ` ${JSON.stringify(l.from)}` : ''}${l.to ? ` -> ${JSON.stringify(l.to)}` : ''}`),
      ...d.fields.map((f) => `  ~ ${f.field}: ${JSON.stringify(f.from)} -> ${JSON.stringify(f.to)}`),
      ...(d.limits.length + d.fields.length === 0 ? ['  (no difference)'] : []),
    ]);
  });

  change(common(policy.command('rollback <name> <version>').description('make an earlier version current again (as a new version)'))).action(
    async (name: string, version: string, o: Common & { author: string; reason?: string; carryOver: 'as-is' | 'reset' | 'proportional'; ifVersion?: number }) => {
      const to = positive('<version>')(version);
      const v = await withStore(o, (s) => s.rollback(name, to, { author: o.author, ...(o.reason ? { reason: o.reason } : {}), carryOver: o.carryOver, ...(o.ifVersion !== undefined ? { ifVersion: o.ifVersion } : {}) }));
      print(o.json, { name, version: v, rolledBackTo: to }, () => [`${name}: version ${to} is current again as version ${v}`]);
    },
  );

  change(common(policy.command('remove <name>').description('take a policy away (its history stays)'))).action(async (name: string, o: Common & { author: string; reason?: string }) => {
    const v = await withStore(o, (s) => s.remove(name, { author: o.author, ...(o.reason ? { reason: o.reason } : {}) }));
    print(o.json, { name, version: v }, () => [`${name}: removed as version ${v}`]);
  });

  common(policy.command('resolve <chain...>').description('the limits a chain of policies resolves to, least specific first (e.g. default plan:pro user:42)'))
    .option('--env <environment>', 'append the layer env:<environment>')
    .action(async (chain: string[], o: Common & { env?: string }) => {
      const names = o.env !== undefined ? [...chain, `env:${o.env}`] : chain;
      const out = await withStore(o, async (s) => {
        const layers = new Map<string, Layer>();
        let version = -1;
        for (let todo = names; todo.length > 0; ) {
          const r = await s.read(todo.map((n) => s.keys.doc(n)));
          if (version !== -1 && r.version !== version) {
            layers.clear();
            todo = names;
            version = -1;
            continue;
          }
          version = r.version;
          todo.forEach((n, i) => {
            const raw = r.values[i];
            const e = raw ? parseEntry(n, raw) : null;
            layers.set(n, { name: n, body: e && e.op !== 'remove' ? e.body : null, resets: e?.resets ?? {} });
          });
          const warnings: string[] = [];
          todo = expand(names, (n) => layers.get(n)?.body?.parent, warnings).filter((n) => !layers.has(n));
        }
        const order = expand(names, (n) => layers.get(n)?.body?.parent, []);
        const r = resolve([], order.map((n) => layers.get(n)!), null);
        return { version, policies: order.filter((n) => layers.get(n)?.body), limits: r.specs.map((x) => ({ ...x, name: r.names.get(x.name)! })), keyNames: Object.fromEntries(r.names) };
      });
      print(o.json, out, () => [`at version ${out.version}, through ${out.policies.join(' > ') || '(no policy)'}:`, ...out.limits.map((l) => `  ${JSON.stringify(l)}`)]);
    });
  return policy;
}
