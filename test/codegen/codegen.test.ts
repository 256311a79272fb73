import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CodegenError } from '../../codegen/errors.js';
import { compileScripts, generate, sha1, staleFiles } from '../../codegen/generate.js';
import { allScripts } from '../../generated/index.js';
import { repoRoot, tempScriptsRoot } from '../support/temp-scripts.js';

const GOOD_HEADER = [
  '--- @script demo',
  '--- @version 1',
  '--- @summary A demo.',
  '--- @key state The state.',
  '--- @arg limit int required 1..10 The limit.',
  '--- @return allowed bool Admitted.',
];

function compileError(files: Record<string, string>, copyLib = true): CodegenError {
  try {
    compileScripts(tempScriptsRoot(files, copyLib));
  } catch (err) {
    if (err instanceof CodegenError) return err;
    throw err;
  }
  throw new Error('expected a CodegenError');
}

describe('codegen', () => {
  it('generated/ is exactly what codegen writes (what `codegen --check` verifies)', () => {
    expect(staleFiles(repoRoot, generate(repoRoot))).toEqual([]);
  });

  it('writes a manifest whose sha1 is the SHA1 of each listed file, with args in call order', () => {
    const manifest = JSON.parse(readFileSync(join(repoRoot, 'generated/manifest.json'), 'utf8'));
    const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8'));
    expect(manifest.name).toBe('redlimit');
    expect(manifest.version).toBe(pkg.version);
    expect(manifest.scripts.map((s: { name: string }) => s.name)).toEqual(allScripts.map((s) => s.name));
    for (const s of manifest.scripts) {
      const bytes = readFileSync(join(repoRoot, s.file), 'utf8');
      expect(s.sha1).toBe(sha1(bytes));
      expect(s.sha1).toBe(allScripts.find((d) => d.name === s.name)!.sha1);
      expect(Object.keys(s).slice(0, 10)).toEqual(['name', 'version', 'sha1', 'file', 'summary', 'readOnly', 'keys', 'args', 'returns', 'checks']);
      for (const a of s.args) expect(Object.keys(a)).toEqual(expect.arrayContaining(['name', 'type', 'required', 'default', 'doc']));
    }
    const gcra = manifest.scripts.find((s: { name: string }) => s.name === 'gcra');
    expect(gcra.args.map((a: { name: string }) => a.name)).toEqual(['limit', 'period_ms', 'burst', 'cost', 'now_ms', 'share_ppm']);
    expect(gcra.args[2].default).toEqual({ arg: 'limit' });
    expect(gcra.returns.map((r: { name: string }) => r.name)).toEqual(['allowed', 'remaining', 'reset_after_ms', 'retry_after_ms']);
  });

  it('flattens each fragment once, in dependency order, with no include left', () => {
    for (const def of allScripts) {
      expect(def.source).not.toMatch(/@include/);
      const order = [...def.source.matchAll(/^-- from (scripts-lua\/\S+)/gm)].map((m) => m[1]);
      expect(new Set(order).size).toBe(order.length);
      if (order.includes('scripts-lua/lib/bucket.lua')) {
        expect(order.indexOf('scripts-lua/lib/exact.lua')).toBeLessThan(order.indexOf('scripts-lua/lib/bucket.lua'));
      }
      expect(order.at(-1)).toBe(`scripts-lua/${def.name}.lua`);
    }
  });

  it('points at file:line for header mistakes', () => {
    const bad = [...GOOD_HEADER];
    bad[4] = '--- @arg limit int required The limit.'; // no range
    const err = compileError({ 'scripts-lua/demo.lua': [...bad, '--- @args', 'return {1}'].join('\n') });
    expect(err.message).toBe('scripts-lua/demo.lua:5: @arg limit: an int needs a range min..max');

    const unknown = compileError({ 'scripts-lua/demo.lua': [...GOOD_HEADER, '--- @frobnicate yes', '--- @args', 'return {1}'].join('\n') });
    expect(unknown.message).toBe('scripts-lua/demo.lua:7: unknown tag @frobnicate');

    const misnamed = compileError({ 'scripts-lua/other.lua': [...GOOD_HEADER, '--- @args'].join('\n') });
    expect(misnamed.message).toMatch(/^scripts-lua\/other\.lua:1: @script demo does not match the file name other\.lua/);

    const noArgs = compileError({ 'scripts-lua/demo.lua': [...GOOD_HEADER, '--- @include "lib/args"', 'return {1}'].join('\n') });
    expect(noArgs.message).toMatch(/exactly one "--- @args" line \(found 0\)/);

    const flag = compileError({ 'scripts-lua/demo.lua': [...GOOD_HEADER, '--- @flags allow-oom', '--- @args', 'return {1}'].join('\n') });
    expect(flag.message).toBe('scripts-lua/demo.lua:7: @flags takes allow-cross-slot-keys, got "allow-oom"');
  });

  it('reports a missing include and an include cycle with the chain', () => {
    const missing = compileError({
      'scripts-lua/demo.lua': [...GOOD_HEADER, '--- @include "lib/nope"', '--- @args', 'return {1}'].join('\n'),
    });
    expect(missing.message).toMatch(/^scripts-lua\/demo\.lua:7: include "lib\/nope" not found/);

    const cycle = compileError(
      {
        'scripts-lua/demo.lua': [...GOOD_HEADER, '--- @include "lib/a"', '--- @args', 'return {1}'].join('\n'),
        'scripts-lua/lib/a.lua': '--- @include "lib/b"\nlocal function a() end',
        'scripts-lua/lib/b.lua': 'local x = 1\n--- @include "lib/a"\nlocal function b() end',
      },
      false,
    );
    expect(cycle.message).toBe('scripts-lua/lib/b.lua:2: circular include: scripts-lua/demo.lua -> lib/a -> lib/b -> lib/a');
  });

  it('refuses a script that calls a helper no included fragment defines', () => {
    const err = compileError({ 'scripts-lua/demo.lua': [...GOOD_HEADER, '--- @args', 'return { rl_nowhere(1) }'].join('\n') });
    expect(err.message).toMatch(/^scripts-lua\/demo\.lua:7: uses rl_arity, rl_arg_int, rl_nowhere, which no included fragment defines/);
  });

  it('refuses a fragment that calls into a fragment it does not include (a runtime global lookup otherwise)', () => {
    const err = compileError({
      'scripts-lua/demo.lua': [...GOOD_HEADER, '--- @include "lib/args"', '--- @include "lib/a"', '--- @include "lib/b"', '--- @args', 'return { rl_a() }'].join('\n'),
      'scripts-lua/lib/a.lua': 'local function rl_a() return rl_b() end',
      'scripts-lua/lib/b.lua': 'local function rl_b() return 1 end',
    });
    expect(err.message).toBe('scripts-lua/lib/a.lua:1: rl_a uses rl_b from scripts-lua/lib/b.lua, which is not included before it (add --- @include "lib/b")');
  });

  it('includes a fragment reached twice only once, and only the definitions the script reaches', () => {
    const root = tempScriptsRoot({
      'scripts-lua/demo.lua': [...GOOD_HEADER, '--- @include "lib/bucket"', '--- @include "lib/exact"', '--- @args', 'return { rl_ms_until(1, 0, 0, 1, 1) }'].join('\n'),
    });
    const [demo] = compileScripts(root);
    const source = demo!.def.source;
    expect(source.match(/^-- from scripts-lua\/lib\/exact\.lua$/gm)).toHaveLength(1);
    // reached through rl_ms_until -> rl_time_until -> rl_muldivmod / rl_divmod
    for (const used of ['rl_ms_until', 'rl_time_until', 'rl_muldivmod', 'rl_divmod', 'rl_arg_int']) {
      expect(source).toContain(`local function ${used}(`);
    }
    for (const unused of ['rl_refill', 'rl_take', 'rl_give', 'rl_arg_string']) expect(source).not.toContain(`local function ${unused}(`);
  });
});
