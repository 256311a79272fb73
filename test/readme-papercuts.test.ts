import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as prom from 'prom-client';
import ts from 'typescript';
import { afterAll, describe, expect, it } from 'vitest';
import { prometheusMetrics } from '../src/metrics/prometheus.js';
import { startLocalRedis } from '../devtools/local-redis.js';
import { repoRoot } from './support/temp-scripts.js';

/** What a new user reads in the README must be what the package does. */
const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
const blocks = [...readme.matchAll(/^```ts\n([\s\S]*?)^```/gm)].map((m) => m[1]!);
const dir = join(repoRoot, '.tmp', `readme-papercuts-${process.pid}`);
mkdirSync(dir, { recursive: true });
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const asSource = (code: string) => code.replaceAll("from 'redlimit'", `from '${join(repoRoot, 'src', 'index.js')}'`);

describe('the README, against the package', () => {
  it('lists every metric the Prometheus adapter exports, and no other', async () => {
    const registry = new prom.Registry();
    prometheusMetrics(prom, { registry });
    const exported = (await registry.getMetricsAsJSON()).map((m) => m.name).sort();
    const row = readme.split('\n').find((l) => l.startsWith('| `metrics` |'))!;
    const listed = [...new Set(row.match(/redlimit_[a-z_]+/g))].sort();
    expect(listed).toEqual(exported);
  });

  it('awaits every promise in its code blocks (an un-awaited fromEnv() gives "l.limit is not a function")', () => {
    const files = blocks.map((code, i) => {
      const file = join(dir, `block-${i + 1}.ts`);
      writeFileSync(file, asSource(code));
      return file;
    });
    const program = ts.createProgram(files, { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, strict: true, noEmit: true, skipLibCheck: true, types: ['node'] });
    const checker = program.getTypeChecker();
    const isPromise = (node: ts.Node) => checker.getTypeAtLocation(node).getSymbol()?.getName() === 'Promise';
    const floating: string[] = [];
    for (const file of files) {
      const source = program.getSourceFile(file)!;
      const visit = (node: ts.Node): void => {
        // A statement or a variable that holds a promise nobody awaits; `void p` says it on purpose.
        const held = ts.isExpressionStatement(node) ? node.expression : ts.isVariableDeclaration(node) ? node.initializer : undefined;
        if (held && !ts.isVoidExpression(held) && !ts.isAwaitExpression(held) && !ts.isArrowFunction(held) && !ts.isFunctionExpression(held) && isPromise(held)) {
          floating.push(`${file.slice(dir.length + 1)}: ${held.getText(source)}`);
        }
        ts.forEachChild(node, visit);
      };
      visit(source);
    }
    expect(floating).toEqual([]);
    // Prose too: fromEnv() is always shown awaited.
    expect([...readme.matchAll(/`([^`\n]*fromEnv\(\)[^`\n]*)`/g)].map((m) => m[1]).filter((c) => !/await fromEnv\(\)/.test(c!))).toEqual([]);
  });

  it('the quick start prints what the text under it says, on a fresh Redis', async () => {
    const redis = await startLocalRedis();
    try {
      const file = join(dir, 'quick-start.ts');
      writeFileSync(file, asSource(blocks[0]!));
      const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', file], { cwd: repoRoot, timeout: 60_000, env: { ...process.env, REDIS_URL: redis.url } });
      const printed = stdout.trim();
      expect(readme).toContain(`On a fresh key this prints \`${printed}\``);
      expect(printed).toBe('allowed, 9 of 60 left on rpm');
    } finally {
      await redis.stop();
    }
  }, 90_000);
});
