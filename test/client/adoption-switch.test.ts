import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { createRateLimiter, type LimitSpec, type RateLimiter } from '../../src/index.js';
import { FOUND_MS, NONE_MS } from '../../src/client/adoption.js';
import { ioredis, nodeRedis, uniquePrefix } from '../support/redis.js';
import { startLocalRedis } from '../../devtools/local-redis.js';

// A limiter of one key per subject looks for the states its limits kept a key per limit (adopt)
// only while such keys may exist: a marker per prefix and set of names (`<prefix>:!adopt:<names>`)
// says whether a scan of the keyspace found one ("found", for an hour, then looked at again) or
// not ("none", for a day); a limiter pinned to a key per limit keeps it at "found". Looking costs a new subject Redis work; not looking must never lose
// a state that was there when the limiter started.
let redis: Redis;
beforeAll(() => {
  redis = ioredis();
});
afterAll(() => redis.quit());

const HOUR = 3_600_000;
const tiers: LimitSpec[] = [
  { name: 'm', algo: 'gcra', limit: 100, periodMs: HOUR, burst: 100 },
  { name: 'd', algo: 'quota', limit: 1000, unit: 'day' },
];
const make = (prefix: string, client: object = redis, extra: Record<string, unknown> = {}): RateLimiter =>
  createRateLimiter({ redis: client, prefix, limits: tiers, denyCache: false, timeoutMs: 10_000, ...extra } as never);

/** The marker's value once a probe has set it (polled: the probe runs after the limiter is ready). */
async function marker(prefix: string): Promise<string> {
  for (let i = 0; i < 200; i++) {
    const v = await redis.get(`${prefix}:!adopt:m+d`);
    if (v !== null && v !== 'scanning') {
      await new Promise((r) => setTimeout(r, 20)); // the probe applies what it set
      return v;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('no marker');
}

/** Today's UTC day start: a day quota's period, as its state names it. */
const today = () => Math.floor(Date.now() / 86_400_000) * 86_400_000;

const left = (d: { limits: { name: string; remaining: number }[] }) => Object.fromEntries(d.limits.map((l) => [l.name, l.remaining]));

describe('adoption: only while states kept a key per limit may exist', () => {
  for (const [name, client] of [['ioredis', () => redis], ['node-redis', () => nodeRedis()]] as const) {
    it(`${name}: a prefix with no key per limit stops looking ("none" for a day); one with such keys looks ("found", for the window) and takes them over`, async () => {
      const c = await client();
      try {
        // Nothing kept a key per limit: the scan finds none; a state put there afterwards is not looked for.
        const fresh = uniquePrefix('adopt-none');
        const a = make(fresh, c);
        await a.ready();
        expect(await marker(fresh)).toBe('none');
        expect(a.stats().adopting).toBe(false);
        const pttl = await redis.pttl(`${fresh}:!adopt:m+d`);
        expect(pttl).toBeGreaterThan(NONE_MS - 60_000);
        await redis.set(`${fresh}:{ann}:d`, `${today()}:7`); // a key per limit's quota state, written after the scan
        expect(left(await a.limit('ann'))).toEqual({ m: 99, d: 999 });
        expect(await redis.exists(`${fresh}:{ann}:d`)).toBe(1); // not looked at, not taken
        await a.close();

        // Keys kept a key per limit before the limiter started: found, taken over.
        const old = uniquePrefix('adopt-found');
        const before = make(old, c, { layout: 'per-limit' });
        await before.limit('bob', { cost: 10 });
        await before.close();
        const b = make(old, c);
        await b.ready();
        expect(await marker(old)).toBe('found');
        expect(b.stats().adopting).toBe(true);
        const window = await redis.pttl(`${old}:!adopt:m+d`);
        expect(window).toBeGreaterThan(FOUND_MS - 60_000);
        expect(window).toBeLessThanOrEqual(FOUND_MS);
        expect(left(await b.limit('bob'))).toEqual({ m: 89, d: 989 });
        expect(await redis.exists(`${old}:{bob}:m`, `${old}:{bob}:d`)).toBe(0);
        await b.close();
      } finally {
        if (c !== redis) await (c as { quit(): Promise<unknown> }).quit();
      }
    });
  }

  it('a limiter starts looking before the marker is read, and a marker another process set is followed as it is', async () => {
    const prefix = uniquePrefix('adopt-early');
    const before = make(prefix, redis, { layout: 'per-limit' });
    await before.limit('cy', { cost: 5 });
    await before.close();
    // Decided at once (the probe has not run): taken over anyway.
    const a = make(prefix);
    expect(left(await a.limit('cy'))).toEqual({ m: 94, d: 994 });
    await a.close();
    // A marker saying "none" is believed: no scan (a key per limit written now is not looked for).
    const other = uniquePrefix('adopt-told');
    await redis.set(`${other}:!adopt:m+d`, 'none', 'PX', 60_000);
    await redis.set(`${other}:{dee}:d`, `${today()}:7`);
    const b = make(other);
    await b.ready();
    await new Promise((r) => setTimeout(r, 50));
    expect(left(await b.limit('dee'))).toEqual({ m: 99, d: 999 });
    expect(await redis.exists(`${other}:{dee}:d`)).toBe(1);
    await b.close();
  });

  it("an ioredis client with a keyPrefix: the scan looks under it (SCAN's MATCH does not get it)", async () => {
    const kp = `${uniquePrefix('kp')}:`;
    const c = new Redis(redis.options.port!, redis.options.host!, { keyPrefix: kp });
    try {
      const prefix = 'rl';
      const before = make(prefix, c, { layout: 'per-limit' });
      await before.limit('eve', { cost: 3 });
      await before.close();
      const b = make(prefix, c);
      await b.ready();
      for (let i = 0; i < 200 && (await redis.get(`${kp}${prefix}:!adopt:m+d`)) !== 'found'; i++) await new Promise((r) => setTimeout(r, 10));
      expect(await redis.get(`${kp}${prefix}:!adopt:m+d`)).toBe('found');
      expect(left(await b.limit('eve'))).toEqual({ m: 96, d: 996 });
      await b.close();
    } finally {
      c.disconnect();
    }
  });

  it('a limiter pinned to a key per limit keeps the marker at "found", so a later limiter of one key per subject takes over what it wrote (a review found "none" believed for a day meanwhile)', async () => {
    const prefix = uniquePrefix('adopt-pinned');
    const first = make(prefix);
    await first.ready();
    expect(await marker(prefix)).toBe('none'); // a quiet moment: nothing kept a key per limit yet
    const pinned = make(prefix, redis, { layout: 'per-limit' });
    await pinned.ready();
    for (let i = 0; i < 200 && (await redis.get(`${prefix}:!adopt:m+d`)) !== 'found'; i++) await new Promise((r) => setTimeout(r, 10));
    expect(await redis.get(`${prefix}:!adopt:m+d`)).toBe('found');
    expect(await redis.pttl(`${prefix}:!adopt:m+d`)).toBeGreaterThan(FOUND_MS - 60_000);
    await pinned.limit('bob', { cost: 40 });
    const later = make(prefix);
    await later.ready();
    expect(await marker(prefix)).toBe('found');
    expect(later.stats().adopting).toBe(true);
    expect(left(await later.limit('bob'))).toEqual({ m: 59, d: 959 });
    await Promise.all([first.close(), pinned.close(), later.close()]);
  });

  it('a scan resumed on another server (a restart mid-scan) records "found", never "none": its cursor may have skipped keys there (a review found "none" recorded)', async () => {
    const own = await startLocalRedis(['--enable-debug-command', 'yes']);
    let server = own;
    const c = new Redis(own.port, '127.0.0.1', { maxRetriesPerRequest: null, retryStrategy: () => 20 });
    c.on('error', () => {});
    const watch = new Redis(own.port, '127.0.0.1', { maxRetriesPerRequest: null, retryStrategy: () => 20 });
    watch.on('error', () => {});
    try {
      // Many keys under the prefix, none of them a limit's own key (a subject's key of other
      // limits): the scan reads them all, page by page.
      await c.call('DEBUG', 'POPULATE', '600000', 'scan:{s}:x+y');
      const rl = createRateLimiter({ redis: c, prefix: 'scan', limits: tiers, denyCache: false, timeoutMs: 10_000 });
      await rl.ready();
      // While it scans: the server restarts (empty: nothing persisted), and the scan resumes there.
      for (let i = 0; i < 2000 && (await watch.get('scan:!adopt:m+d')) !== 'scanning'; i++) await new Promise((r) => setTimeout(r, 1));
      expect(await watch.get('scan:!adopt:m+d')).toBe('scanning');
      await own.kill();
      server = await own.restart();
      let v: string | null = null;
      for (let i = 0; i < 500 && (v === null || v === 'scanning'); i++) {
        await new Promise((r) => setTimeout(r, 10));
        v = await watch.get('scan:!adopt:m+d').catch(() => null);
      }
      expect(v).toBe('found');
      expect(rl.stats().adopting).toBe(true);
      await rl.close();
    } finally {
      c.disconnect();
      watch.disconnect();
      await server.kill();
    }
  }, 60_000);
});
