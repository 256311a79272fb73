import { existsSync } from 'node:fs';
import type { TestProject } from 'vitest/node';
import { redisServerBinary, startLocalRedis } from '../devtools/local-redis.js';

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string;
    redisSource: string;
  }
}

/**
 * Finds the Redis every script test runs against, in this order:
 * 1. REDIS_URL, if set;
 * 2. a `redis:7` container via testcontainers, when a Docker engine answers;
 * 3. the local `redis-server` binary on a free port (nothing kept on disk).
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  if (process.env.REDIS_URL) {
    project.provide('redisUrl', process.env.REDIS_URL);
    project.provide('redisSource', 'REDIS_URL');
    return async () => {};
  }
  const container = await tryContainer();
  if (container) {
    project.provide('redisUrl', container.url);
    project.provide('redisSource', 'testcontainers redis:7');
    return container.stop;
  }
  if (redisServerBinary()) {
    const local = await startLocalRedis();
    project.provide('redisUrl', local.url);
    project.provide('redisSource', `local redis-server on port ${local.port}`);
    return local.stop;
  }
  throw new Error(
    'redlimit tests need a Redis: set REDIS_URL, or run a Docker engine (testcontainers starts redis:7), or install redis-server (e.g. apt-get install redis-server).',
  );
}

async function tryContainer(): Promise<{ url: string; stop: () => Promise<void> } | undefined> {
  // Skip the import and the probe when there is plainly no engine to talk to.
  if (!process.env.DOCKER_HOST && !existsSync('/var/run/docker.sock')) return undefined;
  try {
    const { GenericContainer } = await import('testcontainers');
    const started = await new GenericContainer('redis:7').withExposedPorts(6379).withStartupTimeout(60_000).start();
    return {
      url: `redis://${started.getHost()}:${started.getMappedPort(6379)}`,
      stop: async () => {
        await started.stop();
      },
    };
  } catch {
    return undefined;
  }
}
