/** Timeouts and readiness: a slow or absent Redis never holds a caller past its deadline. */
export class TimeoutError extends Error {
  constructor(ms: number) {
    super(`redlimit: Redis did not answer within ${ms} ms`);
    this.name = 'TimeoutError';
  }
}

export class NotReadyError extends Error {
  constructor(state: string) {
    super(`redlimit: Redis connection not ready (${state}); not sending, so nothing queues to replay later`);
    this.name = 'NotReadyError';
  }
}

/**
 * Is the client connected and ready to send now? A command given to a client that is not ready
 * would wait in its offline queue (ioredis) and run whenever Redis comes back: a stale consume.
 * So the limiter does not send it and decides without Redis instead.
 */
export function readiness(client: object): string | null {
  const c = client as { status?: string; isReady?: boolean };
  if (typeof c.status === 'string') return c.status === 'ready' ? null : c.status; // ioredis Redis and Cluster
  if (typeof c.isReady === 'boolean') return c.isReady ? null : 'not ready'; // node-redis
  return null;
}

const nextReady = new WeakMap<object, Promise<void>>();
const readyWork = new WeakMap<object, (() => void)[]>();

/**
 * Runs `work` now if the client is ready, else once when it first becomes ready. However many
 * limiters ask, a client gets one 'ready' listener for this.
 */
export function whenReadyEvent(client: object, work: () => void): void {
  if (readiness(client) === null) return work();
  const c = client as { once?: (e: string, f: () => void) => void };
  if (typeof c.once !== 'function') return;
  let queue = readyWork.get(client);
  if (!queue) {
    const q: (() => void)[] = [];
    queue = q;
    readyWork.set(client, q);
    c.once('ready', () => {
      readyWork.delete(client);
      for (const w of q) w();
    });
  }
  queue.push(work);
}

/**
 * Resolves once the client is ready, waiting at most `ms` (a fresh or reconnecting client gets
 * that long to come up); rejects with NotReadyError otherwise. Nothing is sent before that.
 * However many callers wait, a client gets one 'ready' listener (no listener-leak warnings).
 */
export async function whenReady(client: object, ms: number): Promise<void> {
  const state = readiness(client);
  if (state === null) return;
  const c = client as { status?: string; isOpen?: boolean; connect?: () => Promise<unknown>; once?: (e: string, f: () => void) => void };
  if (state === 'end' || state === 'close' || (c.isOpen === false && c.status === undefined)) throw new NotReadyError(state);
  if (state === 'wait' && typeof c.connect === 'function') c.connect().catch(() => {}); // ioredis lazyConnect
  if (typeof c.once !== 'function') throw new NotReadyError(state);
  let ready = nextReady.get(client);
  if (!ready) {
    ready = new Promise<void>((resolve) => c.once!('ready', resolve));
    nextReady.set(client, ready);
    void ready.then(() => nextReady.delete(client));
  }
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      ready,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new NotReadyError(readiness(client) ?? state)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Options of a client the limiter relies on; each entry is a warning for stats(). */
export function clientWarnings(client: object): string[] {
  const nodeRedis = client as { isOpen?: boolean; status?: unknown };
  if (nodeRedis.isOpen === false && nodeRedis.status === undefined) {
    const warning = 'the node-redis client is not connected (call await client.connect()): until it is, every decision comes from the fallback';
    process.emitWarning(`redlimit: ${warning}`, { code: 'REDLIMIT_NOT_CONNECTED' });
    return [warning];
  }
  const o = (client as { options?: { autoResendUnfulfilledCommands?: boolean } }).options;
  if (o && o.autoResendUnfulfilledCommands !== false && 'autoResendUnfulfilledCommands' in o) {
    return [
      'ioredis autoResendUnfulfilledCommands is on: a consume in flight when the connection drops is re-sent after reconnect (it can only make limits stricter, never admit more); set it to false to avoid that',
    ];
  }
  return [];
}
