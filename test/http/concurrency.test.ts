import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import express from 'express';
import Fastify from 'fastify';
import { Hono } from 'hono';
import { serve } from '@hono/node-server';
import Koa from 'koa';
import { Redis } from 'ioredis';
import { expressRateLimit, fastifyRateLimit, fetchRateLimit, honoRateLimit, HttpRateLimiter, koaRateLimit, nodeRateLimit } from '../../src/index.js';
import { readyIoredis, UNHURRIED, uniquePrefix } from '../support/redis.js';
import { listen, parseRateLimit } from './support.js';

/**
 * Concurrency limits through every adapter, on real Redis and real servers on loopback: an
 * admitted request holds a slot until its response is done or its client is gone, and gives it
 * back exactly once. Handlers wait on a gate the test opens; the test waits on events (requests
 * entering a handler, releases reported by onRelease), never on time.
 */
let redis: Redis;
beforeAll(async () => {
  redis = await readyIoredis();
});
afterAll(() => redis.quit());

/** Requests entering the handler wait here until the test opens it. */
class Gate {
  private isOpen = false;
  private parked: (() => void)[] = [];
  private count = 0;
  private watchers: { n: number; resolve: () => void }[] = [];
  async pass(): Promise<void> {
    this.count++;
    this.watchers = this.watchers.filter((w) => (this.count >= w.n ? (w.resolve(), false) : true));
    if (!this.isOpen) await new Promise<void>((r) => this.parked.push(r));
  }
  /** Resolves once `n` requests have entered since the last reset. */
  entered(n: number): Promise<void> {
    return this.count >= n ? Promise.resolve() : new Promise((resolve) => this.watchers.push({ n, resolve }));
  }
  open(): void {
    this.isOpen = true;
    for (const r of this.parked.splice(0)) r();
  }
  reset(): void {
    this.isOpen = false;
    this.count = 0;
  }
}

type Release = { rule: string; key: string; holder: string; released: boolean; error?: unknown };

/** Every release onRelease reported; `reached(key, n)` resolves once `key` has had n. */
class Releases {
  readonly all: Release[] = [];
  private watchers: { key: string; n: number; resolve: () => void }[] = [];
  readonly hook = (e: Release) => {
    this.all.push(e);
    this.watchers = this.watchers.filter((w) => (this.of(w.key).length >= w.n ? (w.resolve(), false) : true));
  };
  of(key: string): Release[] {
    return this.all.filter((e) => e.key === key);
  }
  reached(key: string, n: number): Promise<void> {
    return this.of(key).length >= n ? Promise.resolve() : new Promise((resolve) => this.watchers.push({ key, n, resolve }));
  }
}

const SLOTS = 2;
type Started = { url: string; core: HttpRateLimiter; gate: Gate; releases: Releases; close(): Promise<void> };

/** Two requests in flight per client (x-client), next to a generous rate limit; slots live an hour (an expiry cannot hide a leak). */
function makeCore(releases: Releases, label: string): HttpRateLimiter {
  return new HttpRateLimiter({
    redis,
    prefix: uniquePrefix(`cc-${label}`).slice(0, -1),
    rules: [
      { name: 'health', path: '/health', shadow: false, limits: [] },
      {
        name: 'api',
        limits: [
          { name: 'rpm', algo: 'gcra', limit: 100_000, periodMs: 60_000 },
          { name: 'inflight', algo: 'concurrency', limit: SLOTS, ttlMs: 3_600_000 },
        ],
      },
    ],
    key: { header: 'x-client' },
    skip: (req) => req.path === '/skipped',
    onRelease: releases.hook,
    limiter: UNHURRIED,
  });
}

/** What every app does: /work waits on the gate, /throw throws, anything else answers ok. */
async function work(gate: Gate, path: string): Promise<string> {
  if (path === '/throw') throw new Error('boom');
  if (path === '/work') await gate.pass();
  return 'ok';
}

const nodeServer = async (server: Server) => {
  if (!server.listening) await new Promise((r) => server.once('listening', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => new Promise<void>((r) => server.close(() => r())) };
};

const frameworks: Record<string, (core: HttpRateLimiter, gate: Gate) => Promise<{ url: string; close(): Promise<void> }>> = {
  express: async (core, gate) => {
    const app = express();
    app.use(expressRateLimit(core));
    app.get(/.*/, async (req, res) => void res.send(await work(gate, req.path)));
    return nodeServer(app.listen(0, '127.0.0.1'));
  },
  'node http': async (core, gate) => {
    const limit = nodeRateLimit(core);
    return listen((req, res) =>
      limit(req, res, () => {
        work(gate, new URL(req.url!, 'http://x').pathname).then(
          (body) => res.end(body),
          () => {
            res.statusCode = 500;
            res.end();
          },
        );
      }),
    );
  },
  fastify: async (core, gate) => {
    const app = Fastify();
    await fastifyRateLimit(app, core);
    app.get('/*', async (request) => work(gate, new URL(request.url, 'http://x').pathname));
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    return { url, close: () => app.close() };
  },
  hono: async (core, gate) => {
    const app = new Hono();
    app.onError((_err, c) => c.text('failed', 500));
    app.use('*', honoRateLimit(core));
    app.get('*', async (c) => c.text(await work(gate, c.req.path)));
    return nodeServer(serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }) as Server);
  },
  koa: async (core, gate) => {
    const app = new Koa();
    app.silent = true; // the /throw 500s are expected
    app.use(koaRateLimit(core));
    app.use(async (ctx) => {
      ctx.body = await work(gate, ctx.path);
    });
    return nodeServer(app.listen(0, '127.0.0.1'));
  },
  'fetch handler': async (core, gate) => {
    const handler = fetchRateLimit(core, async (req) => new Response(await work(gate, new URL(req.url).pathname)));
    return nodeServer(serve({ fetch: (req) => handler(req).catch(() => new Response('failed', { status: 500 })), port: 0, hostname: '127.0.0.1' }) as Server);
  },
};

describe.each(Object.keys(frameworks))('%s', (name) => {
  let s: Started;
  let n = 0;
  const client = () => `${name.replace(/\W/g, '')}-${++n}`;
  const get = (path: string, who: string, signal?: AbortSignal) => fetch(`${s.url}${path}`, { headers: { 'x-client': who }, ...(signal ? { signal } : {}) });
  const free = async (who: string) => (await s.core.limiter('api')!.peek(who)).limits.find((l) => l.name === 'inflight')!.remaining;

  beforeAll(async () => {
    const releases = new Releases();
    const gate = new Gate();
    const core = makeCore(releases, name.replace(/\W/g, ''));
    const started = await frameworks[name]!(core, gate);
    s = { ...started, core, gate, releases, close: async () => (await started.close(), await core.close()) };
  });
  afterAll(() => s.close());

  it('the third request in flight is 429 while two are, and one after they finish is admitted; another client is independent', async () => {
    s.gate.reset();
    const a = client();
    const b = client();
    const first = [get('/work', a), get('/work', a)];
    await s.gate.entered(2);
    expect(await free(a)).toBe(0);

    const third = await get('/work', a);
    expect(third.status).toBe(429);
    expect(third.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(parseRateLimit(third.headers.get('ratelimit'))).toMatchObject({ name: 'inflight', r: 0 });
    expect(third.headers.get('ratelimit-policy')).toMatch(/"inflight";q=2;w=3600/);
    expect(Number(third.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(Number(third.headers.get('retry-after'))).toBeLessThanOrEqual(3600); // until a held slot would expire
    expect(await third.json()).toMatchObject({ status: 429, limit: 'inflight' });

    const other = get('/work', b); // another client's slots are its own
    await s.gate.entered(3);
    expect(await free(b)).toBe(1);

    s.gate.open();
    const done = await Promise.all([...first, other]);
    expect(done.map((r) => r.status)).toEqual([200, 200, 200]);
    const admitted = done[0]!;
    expect(parseRateLimit(admitted.headers.get('ratelimit'))).toMatchObject({ name: expect.any(String) });
    await s.releases.reached(a, 2);
    await s.releases.reached(b, 1);
    expect(s.releases.of(a).every((e) => e.released && e.rule === 'api')).toBe(true);
    expect(await free(a)).toBe(SLOTS);

    const next = await get('/work', a);
    expect(next.status).toBe(200);
    expect(await next.text()).toBe('ok');
    await s.releases.reached(a, 3);
    expect(await free(a)).toBe(SLOTS);
    expect(await free(b)).toBe(SLOTS);
  });

  it('a client that aborts its request gives its slot back', async () => {
    s.gate.reset();
    const a = client();
    const ac = new AbortController();
    const aborted = get('/work', a, ac.signal).catch((err: unknown) => err);
    await s.gate.entered(1);
    expect(await free(a)).toBe(SLOTS - 1);
    ac.abort();
    expect(await aborted).toBeInstanceOf(Error);
    await s.releases.reached(a, 1); // on the client going away, or at the latest when the handler ends
    s.gate.open(); // the handler ends after its client left
    expect(await free(a)).toBe(SLOTS);
    const after = await get('/work', a);
    expect(after.status).toBe(200);
    await s.releases.reached(a, 2);
    const holders = s.releases.of(a).map((e) => e.holder);
    expect(new Set(holders).size).toBe(holders.length); // each slot given back once
  });

  it('a handler that throws gives its slot back', async () => {
    s.gate.reset();
    const a = client();
    const res = await get('/throw', a);
    expect(res.status).toBe(500);
    await s.releases.reached(a, 1);
    expect(s.releases.of(a)[0]).toMatchObject({ released: true });
    expect(await free(a)).toBe(SLOTS);
  });

  it('no slot leaks over 50 sequential requests; skipped requests and rules without limits take none', async () => {
    s.gate.reset();
    s.gate.open();
    const a = client();
    for (let i = 1; i <= 50; i++) {
      const res = await get('/work', a);
      expect(res.status).toBe(200);
      await res.text();
      await s.releases.reached(a, i);
    }
    expect(await free(a)).toBe(SLOTS);
    const holders = s.releases.of(a).map((e) => e.holder);
    expect(new Set(holders).size).toBe(50);
    for (const path of ['/skipped', '/health']) expect((await get(path, a)).status).toBe(200);
    expect(s.releases.of(a)).toHaveLength(50); // skipped and unlimited requests held nothing to release
    expect(await free(a)).toBe(SLOTS);
  });
});

describe('shadow mode and the core', () => {
  it('a shadow concurrency rule lets the third request through, reports the denial, and holds nothing for it', async () => {
    const releases = new Releases();
    const shadowDenied: string[] = [];
    const core = new HttpRateLimiter({
      redis,
      prefix: uniquePrefix('cc-shadow').slice(0, -1),
      rules: [{ name: 'api', shadow: true, limits: { name: 'inflight', algo: 'concurrency', limit: 2, ttlMs: 3_600_000 } }],
      key: { header: 'x-client' },
      onRelease: releases.hook,
      onDecision: (e) => void (!e.decision.allowed && shadowDenied.push(e.key)),
      limiter: UNHURRIED,
    });
    const gate = new Gate();
    const started = await frameworks.express!(core, gate);
    try {
      const all = [1, 2, 3].map(() => fetch(`${started.url}/work`, { headers: { 'x-client': 's' } }));
      await gate.entered(3); // all three in their handler: shadow never denies
      expect(shadowDenied).toEqual(['s']);
      gate.open();
      expect((await Promise.all(all)).map((r) => r.status)).toEqual([200, 200, 200]);
      await releases.reached('s', 2); // the two admitted give their slots back; the shadow-denied one held none
      expect((await core.limiter('api')!.peek('s')).limits[0]!.remaining).toBe(2);
    } finally {
      await started.close();
      await core.close();
    }
  });

  it('a rule given a limiter with a concurrency limit reports it in RateLimit-Policy; Outcome.release is idempotent', async () => {
    const releases = new Releases();
    const core = new HttpRateLimiter({
      redis,
      prefix: uniquePrefix('cc-core').slice(0, -1),
      limits: [
        { name: 'rpm', algo: 'fixed_window', limit: 10, periodMs: 60_000 },
        { name: 'inflight', algo: 'concurrency', limit: 1, ttlMs: 60_000 },
      ],
      key: { header: 'x-client' },
      onRelease: releases.hook,
      limiter: UNHURRIED,
    });
    try {
      const req = { method: 'GET', path: '/', header: (h: string) => (h === 'x-client' ? 'c' : undefined), remoteAddress: '127.0.0.1', raw: null };
      const one = await core.handle(req);
      expect(one.pass).toBe(true);
      expect(one.headers['RateLimit-Policy']).toBe('"rpm";q=10;w=60, "inflight";q=1;w=60');
      const two = await core.handle(req);
      expect(two).toMatchObject({ pass: false, status: 429 });
      if (!one.pass || !one.release) throw new Error('expected a held slot');
      await Promise.all([one.release(), one.release()]);
      await one.release();
      expect(releases.all).toHaveLength(1);
      expect(releases.all[0]).toMatchObject({ rule: 'default', key: 'c', released: true });
      const three = await core.handle(req);
      expect(three.pass).toBe(true);
      if (three.pass) await three.release?.();
    } finally {
      await core.close();
    }
  });
});

describe('a streamed body holds its slot until it ends', () => {
  /** A body the test writes and ends. */
  function controlled() {
    let ctrl!: ReadableStreamDefaultController<Uint8Array>;
    const body = new ReadableStream<Uint8Array>({ start: (c) => void (ctrl = c) });
    return { body, write: (s: string) => ctrl.enqueue(new TextEncoder().encode(s)), end: () => ctrl.close() };
  }

  const apps: Record<string, (core: HttpRateLimiter, stream: () => ReadableStream<Uint8Array>) => Promise<{ url: string; close(): Promise<void> }>> = {
    'fetch handler': async (core, stream) => {
      const handler = fetchRateLimit(core, () => new Response(stream()));
      return nodeServer(serve({ fetch: handler, port: 0, hostname: '127.0.0.1' }) as Server);
    },
    hono: async (core, stream) => {
      const app = new Hono();
      app.use('*', honoRateLimit(core));
      app.get('*', (c) => c.body(stream()));
      return nodeServer(serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }) as Server);
    },
  };

  it.each(Object.keys(apps))('%s: the slot is given back when the stream ends, or when the client cancels it', async (name) => {
    const releases = new Releases();
    const core = makeCore(releases, `stream${name.replace(/\W/g, '')}`);
    let current = controlled();
    const started = await apps[name]!(core, () => (current = controlled()).body);
    const free = async (who: string) => (await core.limiter('api')!.peek(who)).limits.find((l) => l.name === 'inflight')!.remaining;
    try {
      const res = await fetch(`${started.url}/stream`, { headers: { 'x-client': 's' } });
      expect(res.status).toBe(200);
      const reader = res.body!.getReader();
      current.write('a');
      expect(new TextDecoder().decode((await reader.read()).value)).toBe('a');
      expect(await free('s')).toBe(SLOTS - 1); // headers sent, body still streaming: held
      current.end();
      while (!(await reader.read()).done);
      await releases.reached('s', 1);
      expect(await free('s')).toBe(SLOTS);

      const ac = new AbortController();
      const second = await fetch(`${started.url}/stream`, { headers: { 'x-client': 's' }, signal: ac.signal });
      const r2 = second.body!.getReader();
      current.write('b');
      await r2.read();
      expect(await free('s')).toBe(SLOTS - 1);
      ac.abort(); // the client leaves mid-stream; the stream never ends
      await releases.reached('s', 2);
      expect(await free('s')).toBe(SLOTS);
    } finally {
      await started.close();
      await core.close();
    }
  });
});
