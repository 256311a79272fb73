import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { algorithmTable } from '../../codegen/algorithms.js';
import { compileScripts } from '../../codegen/generate.js';
import { algoNames, algorithms, algorithmScripts, allScripts, decisionReply, itemKinds, multiScript, replyLayouts } from '../../generated/index.js';
import { repoRoot, tempScriptsRoot } from '../support/temp-scripts.js';

describe('the algorithm table (generated/algorithms.ts)', () => {
  it("lists every value of multi's algo enum that answers a decision, block and others being item kinds only", () => {
    const values = multiScript.each!.args.find((a) => a.name === 'algo')!.values!;
    expect(itemKinds).toEqual(values);
    expect(algoNames).toEqual(values.filter((v) => allScripts.find((d) => d.name === v)?.returns.map((r) => r.name).join() === 'allowed,remaining,reset_after_ms,retry_after_ms'));
    expect(algoNames).toContain('gcra');
    expect(algoNames).not.toContain('block');
  });

  it('names each algorithm its scripts by convention and says what it can do', () => {
    expect(algorithms.gcra.scripts).toEqual({ consume: 'gcra', peek: 'gcra_peek', refund: 'gcra_refund', reserve: 'gcra_reserve' });
    expect(algorithms.sliding_log.refundable).toBe(false);
    expect(algorithms.sliding_log.scripts.refund).toBeNull();
    expect(algorithmScripts.token_bucket.peek.name).toBe('token_bucket_peek');
    expect(algorithms.gcra.capacity).toBe('burst');
    expect(algorithms.fixed_window.capacity).toBe('limit');
  });

  it("takes each parameter's range from its consume script's header, and the item field it travels in", () => {
    const quota = Object.fromEntries(algorithms.quota.params.map((p) => [p.name, p]));
    expect(quota.limit).toMatchObject({ min: 1, max: 1e15, required: true, item: 'limit' });
    expect(quota.utc_offset_ms).toMatchObject({ min: -50_400_000, max: 50_400_000, item: 'offset_ms', prop: 'utcOffsetMs' });
    expect(algorithms.gcra.params.map((p) => p.name)).toEqual(['limit', 'period_ms', 'burst']);
    expect(algorithms.gcra.cost).toEqual({ min: 0, max: 1_000_000_000 });
    for (const name of algoNames) {
      const consume = allScripts.find((d) => d.name === name)!;
      for (const p of algorithms[name].params) expect(consume.args.find((a) => a.name === p.name)).toEqual(expect.objectContaining({ type: p.type, required: p.required, ...(p.type === 'int' ? { min: p.min, max: p.max } : {}) }));
    }
  });

  it('places decision results where the replies put them', () => {
    expect(decisionReply).toEqual({ allowed: 0, remaining: 1, resetAfterMs: 2, retryAfterMs: 3, stride: 4 });
    expect(replyLayouts.gcra).toEqual({ offset: 0, stride: 4 });
    expect(replyLayouts.multi).toEqual({ offset: 3, stride: 4 });
    expect(replyLayouts.batch).toEqual({ offset: 1, stride: 4 });
    expect(replyLayouts.multi_batch).toEqual({ offset: 1, stride: 4 });
  });

  it('holds a new algorithm from its Lua files alone', () => {
    const files: Record<string, string> = {};
    for (const f of readdirSync(join(repoRoot, 'scripts-lua')).filter((x) => x.endsWith('.lua'))) files[`scripts-lua/${f}`] = readFileSync(join(repoRoot, 'scripts-lua', f), 'utf8');
    files['scripts-lua/multi.lua'] = files['scripts-lua/multi.lua']!.replace('enum:gcra|', 'enum:demo|gcra|');
    files['scripts-lua/demo.lua'] = files['scripts-lua/sliding_window.lua']!.replace('@script sliding_window', '@script demo');
    files['scripts-lua/demo_peek.lua'] = files['scripts-lua/sliding_window_peek.lua']!.replace('@script sliding_window_peek', '@script demo_peek');
    const table = algorithmTable(compileScripts(tempScriptsRoot(files, true)).map((s) => s.def));
    const demo = table.algorithms.find((a) => a.name === 'demo')!;
    expect(demo.scripts).toEqual({ consume: 'demo', peek: 'demo_peek', refund: null, reserve: null });
    expect(demo.refundable).toBe(false);
    expect(demo.params.map((p) => p.name)).toEqual(['limit', 'period_ms']);
    expect(table.replies.demo_peek).toEqual({ offset: 0, stride: 4 });
  });
});
