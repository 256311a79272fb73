/**
 * A service mesh whose limits live in Redis: every service inherits the mesh default, a service
 * may override it, and the whole mesh runs at 80% in production. A new default is rolled out
 * while traffic flows, then rolled back — no instance restarts, every decision says which policy
 * version it was made at.
 *
 *   npx tsx examples/service-mesh.ts            (REDIS_URL, else redis://127.0.0.1:6379)
 */
import { createPolicyLimiter } from 'redlimit';

const HOUR = 3_600_000;
const SERVICES = ['checkout', 'search', 'payments'] as const;

export interface MeshReport {
  /** Requests admitted per service in each phase. */
  phases: Record<'v1' | 'rollout' | 'rollback', Record<string, number>>;
  /** The policy version each phase's decisions were made at. */
  versions: Record<'v1' | 'rollout' | 'rollback', number[]>;
  /** The limit each service had in each phase (after the production scale). */
  limits: Record<'v1' | 'rollout' | 'rollback', Record<string, number>>;
}

export async function runMesh(redis: object, prefix: string, callsPerService = 60): Promise<MeshReport> {
  const mesh = createPolicyLimiter({
    redis,
    prefix,
    // Every caller is a service: its policy inherits the mesh default (through `parent`).
    chain: (service) => [`svc:${typeof service === 'string' ? service : service.id}`],
    environment: 'production',
  });
  const p = mesh.policies;
  const ops = { author: 'platform-team' };
  const v1 = await p.set('mesh:default', { limits: [{ name: 'rph', algo: 'fixed_window', limit: 50, periodMs: HOUR }] }, { ...ops, reason: 'mesh defaults' });
  for (const s of SERVICES) await p.set(`svc:${s}`, { parent: 'mesh:default', ...(s === 'payments' ? { limits: [{ name: 'rph', algo: 'fixed_window', limit: 20, periodMs: HOUR }] } : {}) }, ops);
  await p.set('env:production', { scale: 0.8 }, { ...ops, reason: 'production runs at 80% of the defaults' });

  // Traffic: every service calls concurrently; a phase is one burst of calls.
  const traffic = async () => {
    const admitted: Record<string, number> = {};
    const versions = new Set<number>();
    const limits: Record<string, number> = {};
    await Promise.all(
      SERVICES.map(async (s) => {
        admitted[s] = 0;
        await Promise.all(
          Array.from({ length: 4 }, async () => {
            for (let i = 0; i < callsPerService / 4; i++) {
              const d = await mesh.limit(s);
              if (d.allowed) admitted[s]!++;
              versions.add(d.policyVersion);
              limits[s] = d.limit;
            }
          }),
        );
      }),
    );
    return { admitted, versions: [...versions].sort((a, b) => a - b), limits };
  };

  const phase1 = await traffic();
  // Roll out a new default (as-is: what each service used stays used) ...
  await p.set('mesh:default', { limits: [{ name: 'rph', algo: 'fixed_window', limit: 100, periodMs: HOUR }] }, { ...ops, reason: 'double the default' });
  const phase2 = await traffic();
  // ... and roll it back: version v1's document becomes current again, as a new version.
  await p.rollback('mesh:default', v1, { ...ops, reason: 'too generous for search' });
  const phase3 = await traffic();
  const history = await p.history('mesh:default');
  console.log(`mesh:default history: ${history.map((h) => `v${h.version} ${h.op} (${h.reason})`).join(', ')}`);
  await mesh.close();
  return {
    phases: { v1: phase1.admitted, rollout: phase2.admitted, rollback: phase3.admitted },
    versions: { v1: phase1.versions, rollout: phase2.versions, rollback: phase3.versions },
    limits: { v1: phase1.limits, rollout: phase2.limits, rollback: phase3.limits },
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { Redis } = await import('ioredis');
  const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', { enableOfflineQueue: false, autoResendUnfulfilledCommands: false });
  await new Promise((resolve) => redis.once('ready', resolve));
  const report = await runMesh(redis, `mesh-example-${Date.now()}`);
  for (const phase of ['v1', 'rollout', 'rollback'] as const) {
    console.log(`${phase.padEnd(8)} at version ${report.versions[phase].join(',')}: admitted ${JSON.stringify(report.phases[phase])}, limits ${JSON.stringify(report.limits[phase])}`);
  }
  redis.disconnect();
}
