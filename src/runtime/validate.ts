import { InvalidArgumentError } from '../errors.js';
import type { ScriptDef } from './script-def.js';

/**
 * The TypeScript side of the argument contract: the same ranges the Lua prologue enforces,
 * checked before any round trip. One function per argument kind; generated bindings call them.
 */
export function intArg(def: ScriptDef, index: number, value: number | undefined): string {
  const spec = def.args[index]!;
  if (value === undefined || value === null) {
    if (spec.required) throw new InvalidArgumentError(def.name, spec.name, `${spec.prop} is required`);
    return '';
  }
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw new InvalidArgumentError(def.name, spec.name, `${spec.prop} must be an integer, got ${describe(value)}`);
  }
  if (value < spec.min! || value > spec.max!) {
    throw new InvalidArgumentError(def.name, spec.name, `${spec.prop} must be between ${spec.min} and ${spec.max}, got ${value}`);
  }
  return String(value);
}

export function stringArg(def: ScriptDef, index: number, value: string | undefined): string {
  const spec = def.args[index]!;
  if (value === undefined || value === null || value === '') {
    if (spec.required) throw new InvalidArgumentError(def.name, spec.name, `${spec.prop} is required`);
    return '';
  }
  if (typeof value !== 'string') {
    throw new InvalidArgumentError(def.name, spec.name, `${spec.prop} must be a string, got ${describe(value)}`);
  }
  if (Buffer.byteLength(value) > spec.maxLength!) {
    throw new InvalidArgumentError(def.name, spec.name, `${spec.prop} must be at most ${spec.maxLength} bytes`);
  }
  return value;
}

export function keyArg(def: ScriptDef, index: number, value: string): string {
  const spec = def.keys[index]!;
  if (typeof value !== 'string' || value.length === 0) {
    throw new InvalidArgumentError(def.name, spec.name, `key ${spec.name} must be a non-empty string, got ${describe(value)}`);
  }
  return value;
}

/** Drops trailing omitted optional arguments; an omitted one in the middle stays '' (= default). */
export function trimOptional(argv: string[]): string[] {
  let end = argv.length;
  while (end > 0 && argv[end - 1] === '') end--;
  return end === argv.length ? argv : argv.slice(0, end);
}

function describe(value: unknown): string {
  if (typeof value === 'number') return String(value);
  if (typeof value === 'string') return JSON.stringify(value.slice(0, 40));
  return typeof value;
}
