import type { AlgorithmDef, AlgorithmParam, ArgSpec, ItemField, ReplyLayout, ScriptDef } from '../src/runtime/script-def.js';
import { tsArgType } from './bindings.js';
import { CodegenError } from './errors.js';
import { camelCase } from './names.js';

/** Everything the generated algorithm table holds. */
export interface AlgorithmTable {
  algorithms: AlgorithmDef[];
  /** Every value of multi's `algo` enum: the algorithms and the item kinds that are not one (block). */
  itemKinds: string[];
  /** multi's item group, in ARGV order: each field's name, default and (enums) values. */
  itemFields: ItemField[];
  /** The fields of one decision result, in reply order (multi's @return_each). */
  decisionFields: string[];
  /** Every script whose reply carries decision results, and where they sit. */
  replies: Record<string, ReplyLayout>;
}

const COMPANIONS = ['peek', 'refund', 'reserve'] as const;

/**
 * Derives the algorithm table from the script headers alone (no tag of its own): an algorithm is
 * a value of multi's `algo` enum with a script of that name that answers a decision (its @return
 * lines are multi's @return_each lines; any other value is an item kind only, e.g. block); its companions are the scripts named `<algo>_peek`, `<algo>_refund` and
 * `<algo>_reserve`; its parameters are its script's @arg lines, each matched to the multi item
 * field that carries it (same name, or the field its name ends with: utc_offset_ms → offset_ms):
 * those batch takes once describe the limit (params), those it takes per decision are per call
 * (cost, priority).
 */
export function algorithmTable(defs: readonly ScriptDef[]): AlgorithmTable {
  const byName = new Map(defs.map((d) => [d.name, d]));
  const fail = (script: string, message: string): never => {
    throw new CodegenError(`scripts-lua/${script}.lua`, 1, message);
  };
  const multi = byName.get('multi') ?? fail('multi', 'the algorithm table comes from multi\'s algo enum, and there is no multi script');
  const algoGroup = multi.each?.args.find((a) => a.name === 'algo' && a.type === 'enum') ?? fail('multi', 'multi needs an `@group algo enum:...`');
  const itemFields: ItemField[] = multi.each!.args.map((a) => ({
    name: a.name,
    prop: a.prop,
    ...(a.default !== undefined ? { default: a.default } : {}),
    ...(a.values ? { values: a.values } : {}),
  }));
  const decisionFields = multi.each!.returns.map((r) => r.name);
  // One limit, many decisions: batch takes what describes the limit once (@arg) and what each
  // decision asks per decision (@group: cost, priority). multi's own @args (now_ms) are the call's.
  const batch = byName.get('batch') ?? fail('batch', 'the algorithm table tells limit parameters from per-call values by the batch script, and there is none');
  const limitFields = new Set(batch.args.map((a) => a.name));
  const decisionArgs = new Set(batch.each?.args.map((a) => a.name) ?? []);
  const clock = new Set(multi.args.map((a) => a.name));
  const answersDecision = (d: ScriptDef) => d.returns.map((r) => r.name).join() === decisionFields.join();

  const algorithms: AlgorithmDef[] = [];
  const replies: Record<string, ReplyLayout> = {};
  for (const name of algoGroup.values!) {
    const consume = byName.get(name);
    if (!consume || !answersDecision(consume)) continue; // an item kind of its own (block), not an algorithm
    const companion = Object.fromEntries(COMPANIONS.map((c) => [c, byName.get(`${name}_${c}`) ?? null])) as Record<(typeof COMPANIONS)[number], ScriptDef | null>;
    const peek = companion.peek ?? fail(name, `an algorithm needs its read-only companion scripts-lua/${name}_peek.lua`);
    if (!answersDecision(peek)) fail(peek.name, `a peek answers what ${name} answers: @return ${decisionFields.join(', ')}`);
    const described = consume.args.filter((a) => !clock.has(a.name)).map((a) => param(a, itemFields.map((f) => f.name), (m) => fail(name, m)));
    const params = described.filter((p) => limitFields.has(p.item));
    const perCall = described.filter((p) => !limitFields.has(p.item));
    for (const p of perCall) if (!decisionArgs.has(p.item)) fail(name, `@arg ${p.name} travels as ${p.item}, which batch takes neither once (@arg) nor per decision (@group)`);
    const cost = perCall.find((p) => p.name === 'cost' && p.type === 'int') ?? fail(name, 'an algorithm takes `@arg cost int`');
    for (const s of [consume, peek]) replies[s.name] = { offset: 0, stride: decisionFields.length };
    algorithms.push({
      name,
      scripts: { consume: name, peek: peek.name, refund: companion.refund?.name ?? null, reserve: companion.reserve?.name ?? null },
      params,
      perCall,
      cost: { min: cost.min!, max: cost.max! },
      capacity: params.some((p) => p.name === 'burst') ? 'burst' : 'limit',
      refundable: companion.refund !== null,
      checks: consume.checks.map((c) => ({ name: c.name, args: c.args })),
    });
  }
  if (algorithms.length === 0) fail('multi', 'no value of multi\'s algo enum names an algorithm');
  for (const d of defs) {
    if (d.each && d.each.returns.map((r) => r.name).join() === decisionFields.join()) replies[d.name] = { offset: d.returns.length, stride: d.each.returns.length };
  }
  return { algorithms, itemKinds: [...algoGroup.values!], itemFields, decisionFields, replies };
}

function param(a: ArgSpec, itemFields: readonly string[], fail: (m: string) => never): AlgorithmParam {
  const item = itemFields.includes(a.name) ? a.name : itemFields.find((f) => a.name.endsWith(`_${f}`));
  if (item === undefined) fail(`@arg ${a.name} has no multi @group to travel in (same name, or one its name ends with)`);
  return { ...a, item: item!, itemProp: camelCase(item!) };
}

/** generated/algorithms.ts: the table, typed, importing nothing at run time (the runtime checks read it). */
export function renderAlgorithms(t: AlgorithmTable): string {
  const q = (s: string) => `'${s}'`;
  const names = t.algorithms.map((a) => a.name);
  const paramType = (a: AlgorithmDef) => `{ ${a.params.map((p) => `${p.prop}${p.required ? '' : '?'}: ${tsArgType(p)}`).join('; ')} }`;
  const json = (v: unknown) => JSON.stringify(v, null, 2);
  const index = t.decisionFields.map((f, i) => `${camelCase(f)}: ${i}, `).join('');
  return `// Generated by \`npm run codegen\` from the script headers (multi's algo enum, each algorithm's scripts). Do not edit.
import type { AlgorithmDef, ItemField, ReplyLayout } from '../src/runtime/script-def.js';

/** An algorithm's name: a value of multi's \`algo\` enum whose script answers a decision. */
export type AlgoName = ${names.map(q).join(' | ')};

/** Every algorithm, in multi's enum order. */
export const algoNames: readonly AlgoName[] = [${names.map(q).join(', ')}];

/** Each algorithm's parameters as a limit states them (camelCase; optional where the header gives a default). */
export interface AlgorithmParams {
${t.algorithms.map((a) => `  ${a.name}: ${paramType(a)};`).join('\n')}
}

/** What each algorithm is: its scripts, parameters with their ranges, capacity, refund. */
export const algorithms: Readonly<Record<AlgoName, AlgorithmDef>> = ${json(Object.fromEntries(t.algorithms.map((a) => [a.name, a])))};

/** Every kind of multi / batch item, as multi's \`algo\` enum lists them (the algorithms and block). */
export const itemKinds: readonly string[] = [${t.itemKinds.map(q).join(', ')}];

/** A multi / batch item's fields, in ARGV order, with the defaults the Lua prologue applies. */
export const itemFields: readonly ItemField[] = ${json(t.itemFields)};

/** Where each field of a decision result sits within it, and how many numbers it spans. */
export const decisionReply = { ${index}stride: ${t.decisionFields.length} } as const;

/** Every script whose reply carries decision results: the first at \`offset\`, then one every \`stride\`. */
export const replyLayouts: Readonly<Record<string, ReplyLayout>> = ${json(t.replies)};
`;
}
