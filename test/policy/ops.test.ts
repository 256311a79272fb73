import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { HttpRateLimiter, opsHandler, opsMiddleware } from '../../src/http/index.js';
import { PolicyStore } from '../../src/policy/index.js';
import { ioredis, uniquePrefix } from '../support/redis.js';
import { listen } from '../http/support.js';

let redis: Redis;
beforeAll(() => {
  redis = ioredis();
});
afterAll(() => redis.disconnect());

const day = 86_400_000;

describe('operations endpoint: policies', () => {
  it('manages policies behind authorize (Node middleware: bodies read for policy changes only)', async () => {
    const prefix = uniquePrefix('pops').slice(0, -1);
    const store = new PolicyStore(redis, prefix);
    const http = new HttpRateLimiter({ redis, prefix, limits: { name: 'x', algo: 'fixed_window', limit: 10, periodMs: day } });
    const ops = opsMiddleware(http, { authorize: (req) => req.headers.get('authorization') === 'Bearer ok', policies: store });
    const s = await listen((req, res) => ops(req, res, () => res.end('app')));
    const call = (method: string, path: string, body?: unknown, auth = 'Bearer ok') =>
      fetch(`${s.url}/ratelimit${path}`, { method, headers: { authorization: auth, 'content-type': 'application/json' }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    expect((await call('GET', '/policies', undefined, 'Bearer no')).status).toBe(401);
    const put = await call('PUT', '/policies/plan:pro', { policy: { limits: [{ name: 'rpm', algo: 'gcra', limit: 600, periodMs: day }] }, author: 'ann', reason: 'launch' });
    expect(put.status).toBe(200);
    const { version: v1 } = (await put.json()) as { version: number };
    const put2 = await call('PUT', '/policies/plan:pro', { policy: { limits: [{ name: 'rpm', algo: 'gcra', limit: 900, periodMs: day }] }, author: 'bob' });
    const { version: v2 } = (await put2.json()) as { version: number };
    expect(await (await call('GET', '/policies')).json()).toEqual({ version: v2, names: ['plan:pro'] });
    expect(await (await call('GET', '/policies/plan:pro')).json()).toMatchObject({ version: v2, author: 'bob' });
    expect(((await (await call('GET', '/policies/plan:pro/history')).json()) as unknown[]).length).toBe(2);
    expect(await (await call('GET', `/policies/plan:pro/diff?from=${v1}&to=${v2}`)).json()).toMatchObject({ limits: [{ name: 'rpm', change: 'changed' }] });
    const bad = await call('PUT', '/policies/plan:pro', { policy: { limits: [{ name: 'rpm', algo: 'gcra', limit: 0, periodMs: day }] }, author: 'eve' });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: 'refused' });
    const stale = await call('PUT', '/policies/plan:pro', { policy: {}, author: 'eve', ifVersion: v1 });
    expect(stale.status).toBe(409);
    const back = await call('POST', '/policies/plan:pro/rollback', { version: v1, author: 'cy', reason: 'undo' });
    expect(back.status).toBe(200);
    expect((await store.get('plan:pro'))!.policy!.limits![0]!.limit).toBe(600);
    expect((await call('DELETE', '/policies/plan:pro', { author: 'cy' })).status).toBe(200);
    expect((await call('GET', '/policies/plan:pro')).status).toBe(404);
    expect(await (await fetch(`${s.url}/elsewhere`)).text()).toBe('app');
    await s.close();
    await http.close();
  });

  it('the fetch handler refuses an over-large body with a 400', async () => {
    const prefix = uniquePrefix('popsbig').slice(0, -1);
    const http = new HttpRateLimiter({ redis, prefix, limits: { name: 'x', algo: 'fixed_window', limit: 10, periodMs: day } });
    const handle = opsHandler(http, { authorize: () => true, policies: new PolicyStore(redis, prefix) });
    const res = await handle(new Request('http://x/ratelimit/policies/big', { method: 'PUT', body: JSON.stringify({ author: 'a', policy: { description: 'x'.repeat(1 << 20) } }) }));
    expect(res!.status).toBe(400);
    expect(await new PolicyStore(redis, prefix).version()).toBe(0);
    await http.close();
  });
});
