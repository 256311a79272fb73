import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import semver from 'semver';
import { describe, expect, it } from 'vitest';
import { repoRoot } from './support/temp-scripts.js';

/**
 * The package promises Node.js 20 (engines, README). No installed package may want more: npm warns
 * EBADENGINE on install, and the dependency may really use what Node 20 lacks. The dev toolchain
 * (vitest 4 on vite 7) needs 20.19; what users install needs only what `engines` says.
 */
const lock = JSON.parse(readFileSync(join(repoRoot, 'package-lock.json'), 'utf8')) as { packages: Record<string, { version?: string; dev?: boolean; engines?: { node?: string } | string[] }> };
const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { engines: { node: string } };

describe('Node.js versions', () => {
  it('every package in the lockfile runs on the Node.js 20 the package promises', () => {
    const promised = semver.minVersion(pkg.engines.node)!.version;
    expect(semver.major(promised)).toBe(20);
    const wantMore: string[] = [];
    for (const [path, p] of Object.entries(lock.packages)) {
      const range = p.engines && !Array.isArray(p.engines) ? p.engines.node : undefined;
      if (!path || !range) continue;
      const node = p.dev ? '20.19.0' : promised;
      if (!semver.satisfies(node, range)) wantMore.push(`${path}@${p.version} wants node ${range}`);
    }
    expect(wantMore).toEqual([]);
  });
});
