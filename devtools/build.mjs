// `npm run build`: the package as ESM (dist/esm) and CommonJS (dist/cjs), each with its types.
import { execFileSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';

const root = new URL('..', import.meta.url);
rmSync(new URL('dist', root), { recursive: true, force: true });
const tsc = (project) => execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', project], { cwd: root, stdio: 'inherit' });
tsc('tsconfig.build.json');
tsc('tsconfig.cjs.json');
// Node reads a folder's nearest package.json "type": the CommonJS build says so for itself.
writeFileSync(new URL('dist/cjs/package.json', root), JSON.stringify({ type: 'commonjs' }) + '\n');
