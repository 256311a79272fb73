import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { compileScripts } from '../../codegen/generate.js';
import { allScripts, gcra, gcraPeek, gcraScript, tokenBucket } from '../../generated/index.js';
import { TwinClient, useFunctions } from '../../src/index.js';
import { UnsupportedClientError } from '../../src/errors.js';
import { preload, runScript } from '../../src/runtime/index.js';
import { startLocalRedis, type LocalRedis } from '../../devtools/local-redis.js';
import { nodeRedis } from '../support/redis.js';
import { repoRoot, tempScriptsRoot } from '../support/temp-scripts.js';

// SCRIPT FLUSH and FUNCTION LOAD would disturb other test files, so this file owns its server.
let server: LocalRedis;
let redis: Redis;
beforeAll(async () => {
  server = await startLocalRedis();
  redis = new Redis(server.url);
});
afterAll(async () => {
  await redis.quit();
  await server.stop();
});

describe('runner', () => {
  it('runs by SHA1 and recovers from NOSCRIPT after SCRIPT FLUSH with one EVAL', async () => {
    await redis.script('FLUSH');
    expect(await redis.script('EXISTS', gcraScript.sha1)).toEqual([0]);
    await redis.config('RESETSTAT');
    const args = { key: 'flush', limit: 5, periodMs: 3_600_000 }; // per hour: nothing refills between the calls
    expect(await gcra(redis, args)).toMatchObject({ allowed: true, remaining: 4 });
    expect(await redis.script('EXISTS', gcraScript.sha1)).toEqual([1]);
    expect(await gcra(redis, args)).toMatchObject({ allowed: true, remaining: 3 });
    const stats = await redis.info('commandstats');
    expect(stats).toMatch(/cmdstat_eval:calls=1,/);
    expect(stats).toMatch(/cmdstat_evalsha:calls=2,/); // the NOSCRIPT miss and the second call
  });

  it('recovers the same way through node-redis 5', async () => {
    const client = await nodeRedis(server.url);
    try {
      await client.scriptFlush();
      expect(await tokenBucket(client, { key: 'flush-node', limit: 2, periodMs: 1000 })).toMatchObject({ allowed: true, remaining: 1 });
      expect(await client.scriptExists([gcraScript.sha1])).toEqual([0]);
    } finally {
      await client.quit();
    }
  });

  it('preload puts every script in the cache', async () => {
    await redis.script('FLUSH');
    await preload(redis, allScripts);
    expect(await redis.script('EXISTS', ...allScripts.map((s) => s.sha1))).toEqual(allScripts.map(() => 1));
  });

  it('refuses an object that is not a Redis client, clearly', async () => {
    await expect(runScript({}, gcraScript, ['k'], ['1', '1'])).rejects.toBeInstanceOf(UnsupportedClientError);
  });

  it('runs two versions of a script side by side (rolling deploy)', async () => {
    // The next version of gcra as a new deploy would ship it: same body, bumped header version.
    const next = gcraScript.version + 1;
    const text = readFileSync(join(repoRoot, 'scripts-lua/gcra.lua'), 'utf8').replace(`--- @version ${gcraScript.version}`, `--- @version ${next}`);
    const [v2] = compileScripts(tempScriptsRoot({ 'scripts-lua/gcra.lua': text })).map((s) => s.def);
    expect(v2!.version).toBe(next);
    expect(v2!.sha1).not.toBe(gcraScript.sha1);

    await redis.script('FLUSH');
    const key = 'rolling';
    const common = ['10', '1000', '10', '1', '5000'];
    // Old and new instances interleave on one key; both are served from the script cache by SHA.
    const r1 = await runScript(redis, gcraScript, [key], common);
    const r2 = await runScript(redis, v2!, [key], common);
    const r3 = await runScript(redis, gcraScript, [key], common);
    expect([r1, r2, r3].map((r) => (r as number[])[1])).toEqual([9, 8, 7]);
    expect(await redis.script('EXISTS', gcraScript.sha1, v2!.sha1)).toEqual([1, 1]);
  });

  it('useFunctions runs every script through FCALL, and falls back to EVALSHA if the library goes', async () => {
    const c = new Redis(server.url);
    try {
      // Per hour: no unit refills between the calls below, however slow the machine.
      await useFunctions(c);
      await c.config('RESETSTAT');
      expect(await gcra(c, { key: 'fn-1', limit: 5, periodMs: 3_600_000 })).toMatchObject({ allowed: true, remaining: 4 });
      expect(await gcraPeek(c, { key: 'fn-1', limit: 5, periodMs: 3_600_000 })).toMatchObject({ allowed: true, remaining: 4 });
      let stats = await c.info('commandstats');
      expect(stats).toMatch(/cmdstat_fcall:calls=1,/);
      expect(stats).toMatch(/cmdstat_fcall_ro:calls=1,/);
      expect(stats).not.toMatch(/cmdstat_evalsha:/);
      await c.function('FLUSH');
      expect(await gcra(c, { key: 'fn-1', limit: 5, periodMs: 3_600_000 })).toMatchObject({ allowed: true, remaining: 3 });
      stats = await c.info('commandstats');
      expect(stats).toMatch(/cmdstat_evalsha:calls=1,/);
      await expect(gcra(c, { key: 'fn-1', limit: 5, periodMs: 3_600_000 })).resolves.toMatchObject({ remaining: 2 });
      const twin = new TwinClient();
      await useFunctions(twin); // harmless on the twin
      expect(await gcra(twin, { key: 't', limit: 5, periodMs: 1000 })).toMatchObject({ allowed: true, remaining: 4 });
    } finally {
      await c.quit();
    }
  });

  it('the Functions library loads and answers like the EVAL scripts', async () => {
    const lib = readFileSync(join(repoRoot, 'generated/functions/redlimit.lua'), 'utf8');
    await redis.function('LOAD', 'REPLACE', lib);
    const listed = (await redis.function('LIST', 'LIBRARYNAME', 'redlimit')) as unknown[];
    const names = JSON.stringify(listed);
    for (const def of allScripts) expect(names).toContain(`redlimit_${def.name}_v${def.version}`);
    const argv = ['7', '1000', '3', '2', '1000000'];
    for (const def of allScripts.filter((d) => ['gcra', 'token_bucket', 'sliding_window', 'sliding_log', 'fixed_window'].includes(d.name))) {
      const fnArgv = def.name === 'fixed_window' ? ['7', '1000', '3', '2', '1000000'] : def.name.startsWith('sliding') ? ['7', '1000', '2', '1000000'] : argv;
      const viaFunction = await redis.fcall(`redlimit_${def.name}_v${def.version}`, 1, `fn:${def.name}`, ...fnArgv);
      const viaScript = await runScript(redis, def, [`ev:${def.name}`], fnArgv);
      expect(viaFunction).toEqual(viaScript);
      await expect(redis.fcall(`redlimit_${def.name}_v${def.version}`, 1, 'x', 'zero')).rejects.toThrow(`BADARG redlimit ${def.name}: limit (ARGV[1]) must be a decimal integer`);
    }
  });
});
