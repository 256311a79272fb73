import { cpSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '../..');

/** A throwaway package root holding a copy of scripts-lua/ plus the given files (relative paths). */
export function tempScriptsRoot(files: Record<string, string> = {}, copyLib = true): string {
  const root = mkdtempSync(join(tmpdir(), 'redlimit-codegen-'));
  mkdirSync(join(root, 'scripts-lua'), { recursive: true });
  if (copyLib) cpSync(join(repoRoot, 'scripts-lua/lib'), join(root, 'scripts-lua/lib'), { recursive: true });
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}
