import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Command } from 'commander';
import { registerPolicyCommands } from '../../src/cli/policy.js';
import { InvalidConfigError, RedisUnavailableError } from '../../src/errors.js';
import { redisUrl, uniquePrefix } from '../support/redis.js';

let prefix: string;
beforeAll(() => {
  prefix = uniquePrefix('pcli').slice(0, -1);
});

async function run(...args: string[]): Promise<string> {
  let out = '';
  const cli = new Command('redlimit').exitOverride();
  registerPolicyCommands(cli, { out: (t) => (out += t) });
  await cli.parseAsync(['policy', ...args, '--url', redisUrl(), '--prefix', prefix], { from: 'user' });
  return out;
}
const json = async (...args: string[]) => JSON.parse(await run(...args, '--json'));

describe('redlimit policy', () => {
  afterAll(() => {});
  it('set, get, list, history, diff, rollback, resolve, remove (text and --json)', async () => {
    const day = 86_400_000;
    const v1 = (await json('set', 'default', '--doc', JSON.stringify({ limits: [{ name: 'rpm', algo: 'gcra', limit: 60, periodMs: day }] }), '--author', 'ann', '--reason', 'first')).version;
    const v2 = (await json('set', 'default', '--doc', JSON.stringify({ limits: [{ name: 'rpm', algo: 'gcra', limit: 120, periodMs: day }] }), '--author', 'bob')).version;
    await json('set', 'env:production', '--scale', '0.8', '--author', 'ann');
    expect(await json('get', 'default')).toMatchObject({ version: v2, author: 'bob', policy: { limits: [{ limit: 120 }] } });
    expect(await run('get', 'default')).toMatch(/^default v\d+ set by bob at .*\n {2}rpm: /);
    expect((await json('list')).names).toEqual(['default', 'env:production']);
    expect((await json('history', 'default')).map((h: { version: number }) => h.version)).toEqual([v2, v1]);
    const diff = await json('diff', 'default', String(v1), String(v2));
    expect(diff.limits).toEqual([{ name: 'rpm', change: 'changed', from: expect.objectContaining({ limit: 60 }), to: expect.objectContaining({ limit: 120 }) }]);
    expect(await run('diff', 'default', String(v1), String(v2))).toContain('~ rpm');
    expect(await json('resolve', 'default', '--env', 'production')).toMatchObject({ policies: ['default', 'env:production'], limits: [{ name: 'rpm', limit: 96 }] });
    const back = await json('rollback', 'default', String(v1), '--author', 'cy', '--reason', 'undo');
    expect((await json('get', 'default')).policy.limits[0].limit).toBe(60);
    expect(back.rolledBackTo).toBe(v1);
    await json('remove', 'env:production', '--author', 'ann');
    expect((await json('list')).names).toEqual(['default']);
  });

  it('a refused policy is a RedlimitError (exit 2 in main), an unreachable Redis a RedisUnavailableError (exit 3)', async () => {
    await expect(run('set', 'x', '--doc', '{"limits":[{"name":"rpm","algo":"nope","limit":1}]}', '--author', 'a')).rejects.toThrow(InvalidConfigError);
    const cli = new Command('redlimit').exitOverride();
    registerPolicyCommands(cli, { out: () => {} });
    await expect(cli.parseAsync(['policy', 'list', '--url', 'redis://127.0.0.1:1'], { from: 'user' })).rejects.toThrow(RedisUnavailableError);
  });
});
