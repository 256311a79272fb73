import { Redis } from 'ioredis';

/**
 * Script calls (INFO commandstats: fcall, evalsha, eval) each of a cluster's nodes ran since the
 * last reading, by "host:port"; resets the counts.
 */
export async function scriptCallsPerNode(nodes: readonly { host: string; port: number }[]): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const n of nodes) {
    const r = new Redis(n.port, n.host);
    const info = await r.info('commandstats');
    let calls = 0;
    for (const m of info.matchAll(/^cmdstat_(fcall|evalsha|eval):calls=(\d+)/gm)) calls += Number(m[2]);
    out.set(`${n.host}:${n.port}`, calls);
    await r.config('RESETSTAT');
    r.disconnect();
  }
  return out;
}
