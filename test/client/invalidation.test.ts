import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import * as ioredis5 from 'ioredis';
import * as ioredis6 from 'ioredis6';
import * as redis5 from 'redis';
import * as redis6 from 'redis6';
import * as b from '../../generated/index.js';
import { INVALIDATION_CHANNEL, REFUND_CHANNEL, subscribe } from '../../src/runtime/pubsub.js';
import { Invalidation } from '../../src/client/invalidation.js';
import { hashSlot, TwinClient } from '../../src/index.js';
import { startLocalRedis, type LocalRedis } from '../../devtools/local-redis.js';
import { startLocalCluster, type LocalCluster } from '../../devtools/local-cluster.js';
import { repoRoot } from '../support/temp-scripts.js';

/**
 * The invalidation transport: the reset, block and refund scripts PUBLISH each key they change on
 * one channel, and a subscription of its own per Redis client hears them — from any connection,
 * any process, any language, on a standalone server or any node of a Cluster. Every wait below is
 * for an event, with a generous bound; nothing asserts how fast it came.
 */
const run = promisify(execFile);
const WAIT_MS = 20_000;

async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = WAIT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

type Made = { client: object; close(): Promise<void> };
type Maker = (url: string) => Promise<Made>;
const clients: Record<string, Maker> = {
  'ioredis 5': async (url) => {
    const c = new ioredis5.Redis(url, { enableOfflineQueue: false, autoResendUnfulfilledCommands: false, retryStrategy: () => 50 });
    c.on('error', () => {});
    return { client: c, close: async () => void c.disconnect() };
  },
  'ioredis 6': async (url) => {
    const c = new ioredis6.Redis(url, { retryStrategy: () => 50 });
    c.on('error', () => {});
    return { client: c, close: async () => void c.disconnect() };
  },
  'node-redis 5': async (url) => {
    const c = redis5.createClient({ url });
    c.on('error', () => {});
    await c.connect();
    return { client: c, close: async () => void c.destroy() };
  },
  'node-redis 6': async (url) => {
    const c = redis6.createClient({ url });
    c.on('error', () => {});
    await c.connect();
    return { client: c, close: async () => void c.destroy() };
  },
  'node-redis 5 (RESP3)': async (url) => {
    const c = redis5.createClient({ url, RESP: 3 });
    c.on('error', () => {});
    await c.connect();
    return { client: c, close: async () => void c.destroy() };
  },
};

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!().catch(() => {});
});

function listen(client: object, options: Parameters<typeof subscribe>[3] = {}) {
  const got: [string, string][] = [];
  const sub = subscribe(client, [INVALIDATION_CHANNEL, REFUND_CHANNEL], (channel, message) => got.push([channel, message]), options);
  cleanup.push(() => sub.close());
  /** Keys heard on one channel, or on either (the order they came in). */
  const keys = (channel?: string) => got.filter(([c]) => channel === undefined || c === channel).map(([, m]) => m);
  return { sub, got, keys };
}

/** An ioredis connection for the test's own commands (errors while a server is down are expected). */
function adminOf(url: string): ioredis5.Redis {
  const a = new ioredis5.Redis(url);
  a.on('error', () => {});
  return a;
}

/** Connections the server holds, ours (the admin) excluded. */
async function connections(admin: ioredis5.Redis): Promise<number> {
  const list = (await admin.call('CLIENT', 'LIST')) as string;
  return list.trim().split('\n').length - 1;
}

async function numsub(admin: ioredis5.Redis): Promise<number> {
  const [, n] = (await admin.call('PUBSUB', 'NUMSUB', INVALIDATION_CHANNEL)) as [string, number];
  return n;
}

describe('the scripts publish what they change', () => {
  let server: LocalRedis;
  let admin: ioredis5.Redis;
  beforeAll(async () => {
    server = await startLocalRedis();
    admin = adminOf(server.url);
  });
  afterAll(async () => {
    admin?.disconnect();
    await server?.stop();
  });

  it('reset (each key) and block (every call) on the invalidate channel, every refund (cost > 0) on the refund channel — the key exactly as given; a 0 refund publishes nothing', async () => {
    const { sub, keys } = listen(admin);
    await until('subscribed', () => sub.healthy());
    const other = new ioredis5.Redis(server.url);
    cleanup.push(async () => other.disconnect());
    const bucket = { limit: 10, periodMs: 60_000 };
    await b.reset(other, { keys: ['p:{t}:r1', 'p:{t}:r2', 'p:{t}:absent'] });
    await b.block(other, { key: 'p:blk', durationMs: 60_000 });
    await b.block(other, { key: 'p:blk', durationMs: 1_000 }); // a longer block is kept, and still announced (the caller counts its echo)
    await b.block(other, { key: 'p:blk', durationMs: 0 });
    await b.gcraRefund(other, { key: 'p:gcra', ...bucket, cost: 0 }); // gives nothing back: no change
    await b.gcraRefund(other, { key: 'p:gcra', ...bucket });
    await b.tokenBucketRefund(other, { key: 'p:tb', ...bucket });
    await b.fixedWindowRefund(other, { key: 'p:fw', ...bucket });
    await b.slidingWindowRefund(other, { key: 'p:sw', ...bucket });
    await b.quotaRefund(other, { key: 'p:q', limit: 10, unit: 'day' });
    const replaced = ['p:{t}:r1', 'p:{t}:r2', 'p:{t}:absent', 'p:blk', 'p:blk', 'p:blk'];
    const refunded = ['p:gcra', 'p:tb', 'p:fw', 'p:sw', 'p:q'];
    await until('every key', () => keys().length >= replaced.length + refunded.length);
    await other.ping(); // anything published after the last call would have arrived before this reply
    expect(keys(INVALIDATION_CHANNEL)).toEqual(replaced);
    expect(keys(REFUND_CHANNEL)).toEqual(refunded);
  });

  it('reset and block publish on INVALIDATION_CHANNEL, the refund scripts and settle on REFUND_CHANNEL, policy changes on their own channel, and their headers say so', () => {
    const publishing = b.allScripts.filter((d) => d.source.includes('PUBLISH')).map((d) => d.name).sort();
    expect(publishing).toEqual(['adaptive_feedback', 'block', 'fixed_window_refund', 'gcra_refund', 'policy_set', 'quota_refund', 'reset', 'settle', 'sliding_window_refund', 'tiers_refund', 'tiers_reset', 'tiers_settle', 'token_bucket_refund']);
    for (const d of b.allScripts.filter((x) => publishing.includes(x.name))) {
      const channel = d.name.endsWith('_refund') || d.name.endsWith('settle') ? REFUND_CHANNEL : d.name.startsWith('policy') || d.name.startsWith('adaptive') ? 'redlimit:policy' : INVALIDATION_CHANNEL;
      const header = d.source.split('\n').filter((l) => l.startsWith('---')).join('\n');
      expect(header, d.name).toContain(`channel ${channel}`);
      for (const call of d.source.match(/PUBLISH', '[^']*'/g)!) expect(call, d.name).toBe(`PUBLISH', '${channel}'`);
    }
  });

  it('a script run by another process in another client (redis-cli --eval on the generated file) reaches the subscriber', async () => {
    const { sub, keys } = listen(admin);
    await until('subscribed', () => sub.healthy());
    await run('redis-cli', ['-p', String(server.port), '--eval', join(repoRoot, 'generated/lua/reset.lua'), 'cli:a', 'cli:b']);
    await run('redis-cli', ['-p', String(server.port), '--eval', join(repoRoot, 'generated/lua/block.lua'), 'cli:blk', ',', '60000']);
    await until('three keys', () => keys().length >= 3);
    expect(keys()).toEqual(['cli:a', 'cli:b', 'cli:blk']);
  });

  it('a user whose ACL forbids PUBLISH still resets, blocks and refunds (nobody is told)', async () => {
    await admin.call('ACL', 'SETUSER', 'nopub', 'on', '>secret', 'resetkeys', '~*', 'resetchannels', '+@all');
    const limited = new ioredis5.Redis(server.url, { username: 'nopub', password: 'secret' });
    cleanup.push(async () => limited.disconnect());
    await expect(limited.publish(INVALIDATION_CHANNEL, 'x')).rejects.toThrow(/NOPERM/);
    await admin.set('acl:k', '1');
    expect(await b.reset(limited, { keys: ['acl:k'] })).toEqual({ deleted: 1 });
    expect((await b.block(limited, { key: 'acl:blk', durationMs: 60_000 })).blockedUntilMs).toBeGreaterThan(0);
    expect(await b.gcraRefund(limited, { key: 'acl:g', limit: 5, periodMs: 60_000 })).toMatchObject({ remaining: 5 });
  });
});

for (const [name, make] of Object.entries(clients)) {
  describe(`subscribe() through ${name}`, () => {
    let server: LocalRedis;
    let admin: ioredis5.Redis;
    beforeAll(async () => {
      server = await startLocalRedis();
      admin = adminOf(server.url);
    });
    afterAll(async () => {
      admin?.disconnect();
      await server?.kill();
    });

    it('hears a reset by another connection, on a connection of its own; keyEvents() follows the server config; close() unsubscribes', async () => {
      const made = await make(server.url);
      cleanup.push(() => made.close());
      const before = await connections(admin);
      const { sub, keys } = listen(made.client);
      await until('subscribed', () => sub.healthy());
      expect(sub.keyEvents()).toBe(false); // the server's default: no keyspace events
      expect(await connections(admin)).toBe(before + 1);
      expect(await numsub(admin)).toBe(1);
      await b.reset(admin, { keys: ['a:1'] });
      await until('a:1', () => keys().includes('a:1'));
      await sub.close();
      await until('unsubscribed', async () => (await numsub(admin)) === 0 && (await connections(admin)) === before);
      expect(sub.healthy()).toBe(false);
    });

    it('with keyspace events on (E and g), a DEL or UNLINK by hand is heard too', async () => {
      await admin.config('SET', 'notify-keyspace-events', 'Eg');
      try {
        const made = await make(server.url);
        cleanup.push(() => made.close());
        const { sub, got } = listen(made.client);
        await until('subscribed', () => sub.healthy());
        expect(sub.keyEvents()).toBe(true);
        await admin.set('hand:1', 'x');
        await admin.set('hand:2', 'x');
        await admin.del('hand:1');
        await admin.unlink('hand:2');
        await until('both deletions', () => ['hand:1', 'hand:2'].every((k) => got.some(([c, m]) => c.startsWith('__keyevent@0__:') && m === k)));
      } finally {
        await admin.config('SET', 'notify-keyspace-events', '');
      }
    });

    it('healthy() is false while the server is down or paused, true again once it is back and resubscribed', async () => {
      const made = await make(server.url);
      cleanup.push(() => made.close());
      const { sub, keys } = listen(made.client, { heartbeatMs: 100 });
      await until('subscribed', () => sub.healthy());

      await server.kill();
      await until('unhealthy after the kill', () => !sub.healthy());
      server = await server.restart();
      admin.disconnect();
      admin = adminOf(server.url);
      await until('healthy after the restart', () => sub.healthy());
      await b.reset(admin, { keys: ['after:restart'] });
      await until('heard after the restart', () => keys().includes('after:restart'));

      server.process.kill('SIGSTOP');
      try {
        await until('unhealthy while paused', () => !sub.healthy());
      } finally {
        server.process.kill('SIGCONT');
      }
      await until('healthy after the pause', () => sub.healthy());
      await b.reset(admin, { keys: ['after:pause'] });
      await until('heard after the pause', () => keys().includes('after:pause'));
    });

    it('never rejects nor throws with Redis down from the start, and closes cleanly', async () => {
      const dead = await startLocalRedis();
      const url = dead.url;
      const made = await make(url);
      cleanup.push(() => made.close());
      await dead.kill();
      const { sub } = listen(made.client, { heartbeatMs: 50 });
      await new Promise((r) => setTimeout(r, 300));
      expect(sub.healthy()).toBe(false);
      expect(sub.keyEvents()).toBe(false);
      await sub.close();
      await sub.close(); // idempotent
    });
  });
}

describe('processes', () => {
  let server: LocalRedis;
  beforeAll(async () => {
    server = await startLocalRedis();
  });
  afterAll(() => server?.kill());

  const child = (body: string) => {
    const dir = mkdtempSync(join(tmpdir(), 'redlimit-invalidation-'));
    const file = join(dir, 'child.mts');
    const at = (p: string) => JSON.stringify(pathToFileURL(join(repoRoot, p)).href);
    writeFileSync(
      file,
      `import { createRequire } from 'node:module';\nconst require = createRequire(${JSON.stringify(join(repoRoot, 'package.json'))});\n` +
        `const { Redis } = require('ioredis');\nconst { createClient } = require('redis');\nimport { subscribe, INVALIDATION_CHANNEL } from ${at('src/runtime/pubsub.ts')};\n` +
        `import { Invalidation } from ${at('src/client/invalidation.ts')};\nimport * as b from ${at('generated/index.ts')};\n` +
        `const url = process.argv[2];\nconst wait = async (f: () => boolean) => { while (!f()) await new Promise((r) => setTimeout(r, 20)); };\n${body}\n`,
    );
    return run(process.execPath, ['--import', 'tsx', file, server.url], { cwd: repoRoot, timeout: 60_000 });
  };

  it('a reset run by another node process reaches this one', async () => {
    const admin = adminOf(server.url);
    cleanup.push(async () => admin.disconnect());
    const { sub, keys } = listen(admin);
    await until('subscribed', () => sub.healthy());
    await child(`const r = new Redis(url); await b.reset(r, { keys: ['proc:x'] }); r.disconnect();`);
    await until('proc:x', () => keys().includes('proc:x'));
  });

  it('a process exits once close() ran (ioredis and node-redis), and even when only its own client was closed', async () => {
    const { stdout } = await child(
      `const io = new Redis(url); const nr = createClient({ url }); await nr.connect();\n` +
        `const subs = [subscribe(io, [INVALIDATION_CHANNEL], () => {}), subscribe(nr, [INVALIDATION_CHANNEL], () => {})];\n` +
        `const inv = new Invalidation(io, () => {}); inv.start();\n` +
        `await wait(() => subs.every((s) => s.healthy()) && inv.healthy());\n` +
        `for (const s of subs) await s.close(); await inv.close();\n` +
        `// left open on purpose: a subscription nobody closed must not hold the process either\n` +
        `subscribe(io, [INVALIDATION_CHANNEL], () => {});\n` +
        `io.disconnect(); nr.destroy(); console.log('done');`,
    );
    expect(stdout.trim()).toBe('done'); // and it exited: run() resolved
  });
});

describe('Invalidation', () => {
  let server: LocalRedis;
  let admin: ioredis5.Redis;
  beforeAll(async () => {
    server = await startLocalRedis();
    admin = adminOf(server.url);
  });
  afterAll(async () => {
    admin?.disconnect();
    await server?.kill();
  });

  it('one subscription per client, shared by every limiter on it, closed with the last; prefix filters keys', async () => {
    const client = new ioredis5.Redis(server.url);
    cleanup.push(async () => client.disconnect());
    const a: string[] = [];
    const c: string[] = [];
    const health: boolean[] = [];
    const one = new Invalidation(client, (k) => a.push(k), { prefix: 'one:', onHealthChange: (h) => health.push(h) });
    const two = new Invalidation(client, (k) => c.push(k));
    expect(one.healthy()).toBe(false); // lazy: nothing before start()
    expect(await numsub(admin)).toBe(0);
    one.start();
    two.start();
    two.start();
    await until('both healthy', () => one.healthy() && two.healthy());
    expect(health).toEqual([true]);
    expect(await numsub(admin)).toBe(1);
    await b.reset(admin, { keys: ['one:{k}x', 'zzz:{k}y'] });
    await until('both keys at two', () => c.length === 2);
    expect(c).toEqual(['one:{k}x', 'zzz:{k}y']);
    expect(a).toEqual(['one:{k}x']);

    await one.close();
    expect(await numsub(admin)).toBe(1); // two still listens
    expect(two.healthy()).toBe(true);
    one.start(); // a no-op after close()
    expect(one.healthy()).toBe(false);
    await two.close();
    await until('unsubscribed', async () => (await numsub(admin)) === 0);

    const three = new Invalidation(client, () => {}); // a new one after the last closed opens a new subscription
    three.start();
    cleanup.push(() => three.close());
    await until('three healthy', () => three.healthy());
  });

  it('many limiters on one client add no listener to the client and no connection per limiter', async () => {
    const client = new ioredis5.Redis(server.url);
    cleanup.push(async () => client.disconnect());
    await client.ping();
    const listenersBefore = client.eventNames().map((e) => client.listenerCount(e));
    const before = await connections(admin);
    const many = Array.from({ length: 20 }, () => new Invalidation(client, () => {}));
    for (const m of many) m.start();
    await until('all healthy', () => many.every((m) => m.healthy()));
    expect(await connections(admin)).toBe(before + 1);
    expect(client.eventNames().map((e) => client.listenerCount(e))).toEqual(listenersBefore);
    for (const m of many) await m.close();
    await until('back to before', async () => (await connections(admin)) === before);
  });

  it('an ioredis keyPrefix is taken off: keys arrive as the limiter names them', async () => {
    const client = new ioredis5.Redis(server.url, { keyPrefix: 'app:' });
    cleanup.push(async () => client.disconnect());
    const got: string[] = [];
    const inv = new Invalidation(client, (k) => got.push(k), { prefix: 'rl:' });
    inv.start();
    cleanup.push(() => inv.close());
    await until('healthy', () => inv.healthy());
    await b.reset(client, { keys: ['rl:{s}:a'] }); // the server sees app:rl:{s}:a
    await b.reset(admin, { keys: ['rl:{s}:b'] }); // no app: prefix: another application's key
    await b.reset(client, { keys: ['rl:{s}:c'] });
    await until('two keys', () => got.length >= 2);
    expect(got).toEqual(['rl:{s}:a', 'rl:{s}:c']);
  });

  it('the in-memory twin has nothing to subscribe to: never healthy, nothing opened', async () => {
    const inv = new Invalidation(new TwinClient(), () => {});
    inv.start();
    expect(inv.healthy()).toBe(false);
    expect(inv.keyEvents()).toBe(false);
    await inv.close();
  });
});

describe('on a Redis Cluster', () => {
  let cluster: LocalCluster;
  beforeAll(async () => {
    cluster = await startLocalCluster();
  }, 60_000);
  afterAll(() => cluster?.stop());

  const makers: Record<string, () => Promise<Made>> = {
    'ioredis 5': async () => {
      const c = new ioredis5.Cluster(cluster.nodes);
      c.on('error', () => {});
      await c.ping();
      return { client: c, close: async () => void c.disconnect() };
    },
    'ioredis 6': async () => {
      const c = new ioredis6.Cluster(cluster.nodes);
      c.on('error', () => {});
      await c.ping();
      return { client: c, close: async () => void c.disconnect() };
    },
    'node-redis 5': async () => {
      const c = redis5.createCluster({ rootNodes: cluster.nodes.map((n) => ({ url: `redis://${n.host}:${n.port}` })) });
      c.on('error', () => {});
      await c.connect();
      return { client: c, close: async () => void c.destroy() };
    },
    'node-redis 6': async () => {
      const c = redis6.createCluster({ rootNodes: cluster.nodes.map((n) => ({ url: `redis://${n.host}:${n.port}` })) });
      c.on('error', () => {});
      await c.connect();
      return { client: c, close: async () => void c.destroy() };
    },
  };

  it.each(Object.keys(makers))('%s: one subscription hears scripts run on every shard (PUBLISH is broadcast); keyEvents() is false', async (name) => {
    const made = await makers[name]!();
    cleanup.push(() => made.close());
    const writer = new ioredis5.Cluster(cluster.nodes);
    cleanup.push(async () => writer.disconnect());
    const { sub, keys } = listen(made.client);
    await until('subscribed', () => sub.healthy());
    expect(sub.keyEvents()).toBe(false);
    // Keys on each of the three primaries (one hash tag per shard).
    const tags: string[] = [];
    const owners = new Set<number>();
    const slots = (await writer.cluster('SLOTS')) as unknown as [number, number, [string, number]][];
    for (let i = 0; tags.length < 3 && i < 1000; i++) {
      const slot = hashSlot(`{t${i}}`);
      const owner = slots.find(([from, to]) => slot >= from && slot <= to)![2][1];
      if (!owners.has(owner)) {
        owners.add(owner);
        tags.push(`t${i}`);
      }
    }
    expect(tags.length).toBe(3);
    const expected: string[] = [];
    for (const t of tags) {
      await b.reset(writer, { keys: [`c:{${t}}:a`, `c:{${t}}:b`] });
      await b.block(writer, { key: `c:{${t}}:blk`, durationMs: 60_000 });
      await b.gcraRefund(writer, { key: `c:{${t}}:g`, limit: 5, periodMs: 60_000 });
      expected.push(`c:{${t}}:a`, `c:{${t}}:b`, `c:{${t}}:blk`, `c:{${t}}:g`);
    }
    await until('every key from every shard', () => expected.every((k) => keys().includes(k)));
    await sub.close();
    expect(sub.healthy()).toBe(false);
  });

  it('moves to another primary when its node dies, and is healthy again', async () => {
    const c = new ioredis5.Cluster(cluster.nodes);
    c.on('error', () => {});
    await c.ping();
    cleanup.push(async () => c.disconnect());
    const { sub } = listen(c, { heartbeatMs: 100 });
    await until('subscribed', () => sub.healthy());
    // Which node did it pick? The one whose NUMSUB says 1.
    let index = -1;
    await until('found its node', async () => {
      for (let i = 0; i < cluster.servers.length; i++) {
        const n = new ioredis5.Redis(cluster.servers[i]!.port, '127.0.0.1');
        const [, count] = (await n.call('PUBSUB', 'NUMSUB', INVALIDATION_CHANNEL)) as [string, number];
        n.disconnect();
        if (count > 0) index = i;
      }
      return index >= 0;
    });
    await cluster.servers[index]!.kill();
    await until('unhealthy', () => !sub.healthy());
    await until('healthy on another node', () => sub.healthy());
    expect(sub.keyEvents()).toBe(false);
  });
});
