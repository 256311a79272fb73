import { CodegenError } from './errors.js';
import type { Fragment } from './includes.js';

interface Definition {
  name: string;
  text: string;
}

const DEFINITION = /^local (?:function )?([A-Za-z_]\w*)/;

/**
 * Splits a fragment into its top-level `local` definitions, each with the comment lines right
 * above it; what comes before the first one is the fragment's doc.
 */
function splitDefinitions(body: string): { doc: string; defs: Definition[] } {
  const lines = body.split('\n');
  const starts: { line: number; name: string }[] = [];
  lines.forEach((l, i) => {
    const m = DEFINITION.exec(l);
    if (!m) return;
    let start = i;
    while (start > 0 && lines[start - 1]!.startsWith('--') && !starts.some((s) => s.line === start - 1)) start--;
    starts.push({ line: start, name: m[1]! });
  });
  const doc = lines.slice(0, starts[0]?.line ?? lines.length).join('\n').trim();
  const defs = starts.map((s, k) => ({
    name: s.name,
    text: lines.slice(s.line, starts[k + 1]?.line ?? lines.length).join('\n').trim(),
  }));
  return { doc, defs };
}

/**
 * Keeps only the fragment definitions that `code` reaches (directly or through other kept
 * definitions). Every `local function` costs a closure on every EVAL/EVALSHA, so a script
 * should carry only what it calls.
 */
export function shakeFragments(fragments: Fragment[], code: string): Fragment[] {
  const split = fragments.map((f) => ({ f, ...splitDefinitions(f.body) }));
  const all = split.flatMap((s) => s.defs);
  const used = new Set<string>();
  const pending = [code];
  while (pending.length > 0) {
    const text = pending.pop()!;
    for (const d of all) {
      if (!used.has(d.name) && new RegExp(`\\b${d.name}\\b`).test(text)) {
        used.add(d.name);
        pending.push(d.text);
      }
    }
  }
  // A local is visible only below its definition: a fragment that calls into a fragment it does
  // not include (directly or not) would fail at run time as a global lookup. Catch it here.
  const definedAt = new Map<string, number>();
  all.forEach((d, i) => definedAt.set(d.name, i));
  all.forEach((d, i) => {
    for (const other of all) {
      if (other !== d && definedAt.get(other.name)! > i && new RegExp(`\\b${other.name}\\b`).test(d.text)) {
        const owner = split.find((s) => s.defs.includes(d))!.f;
        const otherOwner = split.find((s) => s.defs.includes(other))!.f;
        throw new CodegenError(owner.file, 1, `${d.name} uses ${other.name} from ${otherOwner.file}, which is not included before it (add --- @include "${otherOwner.name}")`);
      }
    }
  });
  return split
    .map(({ f, doc, defs }) => {
      const kept = defs.filter((d) => used.has(d.name));
      return { ...f, body: kept.length === 0 ? '' : [doc, ...kept.map((d) => d.text)].filter(Boolean).join('\n\n') };
    })
    .filter((f) => f.body !== '');
}
