import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { autoFunctions, createRateLimiter, detectServer, UnsupportedServerError } from '../../src/index.js';
import { serverInfoFrom } from '../../src/runtime/server.js';
import { startLocalRedis, type LocalRedis } from '../../devtools/local-redis.js';
import { UNHURRIED } from '../support/redis.js';

/** The least a redlimit client needs (README, "Least privilege"). */
const ACL_COMMANDS = '+evalsha +eval +evalsha_ro +eval_ro +time +get +set +del +hmget +hset +pexpire +pexpireat +zadd +zcard +zcount +zrange +zrangebyscore +zrem +zremrangebyscore +zscore +pttl +pexpiretime +scan +ping +info';
const ACL_FUNCTIONS = '+fcall +fcall_ro +function|load';

describe('servers', () => {
  it('Redis before 7.0 is refused with a clear error; 7.0+ and Valkey are supported', () => {
    const old = serverInfoFrom('# Server\r\nredis_version:6.2.14\r\nredis_mode:standalone\r\n');
    expect(old.unsupported).toBeInstanceOf(UnsupportedServerError);
    expect(old.unsupported!.message).toMatch(/needs Redis 7\.0 or later.*Redis 6\.2\.14/);
    expect(serverInfoFrom('redis_version:7.0.15\r\n')).toMatchObject({ product: 'redis', version: '7.0.15', unsupported: null });
    expect(serverInfoFrom('redis_version:7.2.4\r\nvalkey_version:8.0.1\r\n')).toMatchObject({ product: 'valkey', version: '8.0.1', unsupported: null });
    expect(serverInfoFrom('')).toMatchObject({ product: 'unknown', unsupported: null });
  });

  describe('a least-privilege ACL user', () => {
    let own: LocalRedis;
    let admin: Redis;
    beforeAll(async () => {
      own = await startLocalRedis();
      admin = new Redis(own.url);
      await admin.call('ACL', 'SETUSER', 'limiter', 'on', '>secret', 'resetkeys', '~rl:*', 'resetchannels', '-@all', ...ACL_COMMANDS.split(' '));
      await admin.call('ACL', 'SETUSER', 'limiter-fn', 'on', '>secret', 'resetkeys', '~rl:*', 'resetchannels', '-@all', ...ACL_COMMANDS.split(' '), ...ACL_FUNCTIONS.split(' '));
    });
    afterAll(async () => {
      admin?.disconnect();
      await own?.stop();
    });

    async function exercise(user: string) {
      const client = new Redis(own.url, { username: user, password: 'secret', enableOfflineQueue: false, autoResendUnfulfilledCommands: false });
      await new Promise((r) => client.once('ready', r));
      const limits = [
        { name: 'rpm', algo: 'sliding_log' as const, limit: 5, periodMs: 60_000 },
        { name: 'tpm', algo: 'token_bucket' as const, limit: 1000, periodMs: 60_000 },
        { name: 'day', algo: 'quota' as const, limit: 100, unit: 'day' as const },
      ];
      const many = createRateLimiter({ redis: client, limits, blocks: true, ...UNHURRIED });
      const one = createRateLimiter({ redis: client, limits: { name: 'g', algo: 'gcra', limit: 10, periodMs: 1000 }, ...UNHURRIED });
      // One key per subject (the default for these): tiers, its reservations, and the adoption
      // switch's marker and SCAN (a new subject is decided while it still looks).
      const tiers = createRateLimiter({
        redis: client,
        limits: [
          { name: 'm', algo: 'gcra', limit: 10, periodMs: 60_000 },
          { name: 'd', algo: 'quota', limit: 100, unit: 'day' },
        ],
        ...UNHURRIED,
      });
      expect((await detectServer(client)).unsupported).toBeNull();
      const functions = await autoFunctions(client);
      const decisions = [
        await many.limit('u', { cost: { tpm: 300 } }),
        await many.peek('u'),
        ...(await Promise.all([one.limit('a'), one.limit('b'), one.limit('a')])), // a coalesced batch
        await one.peek('a'),
        await one.acquire('a'),
      ];
      decisions.push(await tiers.limit('t'), await tiers.peek('t'));
      const held = await tiers.reserve('t', { cost: { m: 1, d: 5 } });
      expect((await tiers.commit(held.handle!, { d: 7 })).status).toBe('committed');
      await tiers.refund('t', { cost: { d: 2 } });
      await tiers.ready();
      for (let i = 0; i < 100 && tiers.stats().adopting !== false; i++) await new Promise((r) => setTimeout(r, 10));
      expect(tiers.stats().adopting).toBe(false); // the marker read and set: nothing to take over here
      decisions.push(await tiers.limit('t2'));
      await tiers.reset('t');
      expect(tiers.stats().breaker!.totalFailures).toBe(0);
      await tiers.close();
      await many.refund('u', { cost: { tpm: 100, rpm: 0, day: 0 } });
      await many.block('u', 1000);
      expect((await many.limit('u')).deniedBy).toBe('block');
      await many.reset('u');
      await one.reset('a');
      expect(decisions.every((d) => d.source === 'redis')).toBe(true);
      expect(one.stats().breaker!.totalFailures).toBe(0);
      await many.close();
      await one.close();
      client.disconnect();
      return functions;
    }

    it('runs every operation with EVALSHA when it may not use Functions', async () => {
      expect(await exercise('limiter')).not.toBe('fcall');
    });

    it('and through FCALL when it may', async () => {
      expect(await exercise('limiter-fn')).toBe('fcall');
    });
  });
});
