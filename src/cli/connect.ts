/** The CLI's Redis connection. */
import { CliError } from './output.js';

/** An ioredis client (a peer dependency) that never queues: unreachable is an answer, fast. */
export async function connect(url: string, cluster: boolean) {
  let ioredis: Pick<typeof import('ioredis'), 'Redis' | 'Cluster'>;
  try {
    ioredis = await import('ioredis');
  } catch {
    throw new CliError('the CLI talks to Redis through ioredis: npm install ioredis', 1);
  }
  const options = { enableOfflineQueue: true, maxRetriesPerRequest: 0, connectTimeout: 3_000, retryStrategy: () => null, lazyConnect: true };
  const client = cluster ? new ioredis.Cluster([url], { redisOptions: options, clusterRetryStrategy: () => null }) : new ioredis.Redis(url, options);
  client.on('error', () => {});
  try {
    await client.connect();
    if (cluster) await new Promise((resolve, reject) => (client.status === 'ready' ? resolve(null) : (client.once('ready', resolve), client.once('end', () => reject(new Error('cluster connection ended'))))));
  } catch (err) {
    client.disconnect();
    throw new CliError(`cannot reach Redis at ${url}: ${(err as Error).message}`, 3);
  }
  return client;
}

