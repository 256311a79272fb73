import { InvalidArgumentError } from '../errors.js';
import type { ArgSpec, KeySpec } from './script-def.js';

/**
 * The TypeScript side of the argument contract: the same ranges the Lua prologue enforces,
 * checked before any round trip. One function per argument kind; generated bindings call them
 * with the spec from the script's header. `label` names the argument in messages (limits[2].cost).
 */
export function intArg(script: string, spec: ArgSpec, value: number | undefined, label = spec.prop): string {
  if (value === undefined || value === null) return missing(script, spec, label);
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw new InvalidArgumentError(script, spec.name, `${label} must be an integer, got ${describe(value)}`);
  }
  if (value < spec.min! || value > spec.max!) {
    throw new InvalidArgumentError(script, spec.name, `${label} must be between ${spec.min} and ${spec.max}, got ${value}`);
  }
  return String(value);
}

export function stringArg(script: string, spec: ArgSpec, value: string | undefined, label = spec.prop): string {
  if (value === undefined || value === null || value === '') return missing(script, spec, label);
  if (typeof value !== 'string') {
    throw new InvalidArgumentError(script, spec.name, `${label} must be a string, got ${describe(value)}`);
  }
  if (!(value as unknown as { isWellFormed(): boolean }).isWellFormed()) {
    throw new InvalidArgumentError(script, spec.name, `${label} must be well-formed text (it holds a lone UTF-16 surrogate)`);
  }
  if (Buffer.byteLength(value) > spec.maxLength!) {
    throw new InvalidArgumentError(script, spec.name, `${label} must be at most ${spec.maxLength} bytes`);
  }
  return value;
}

export function enumArg(script: string, spec: ArgSpec, value: string | undefined, label = spec.prop): string {
  if (value === undefined || value === null || value === '') return missing(script, spec, label);
  if (!spec.values!.includes(value)) {
    throw new InvalidArgumentError(script, spec.name, `${label} must be one of ${spec.values!.join('|')}, got ${describe(value)}`);
  }
  return value;
}

export function keyArg(script: string, spec: KeySpec, value: string, label = `key ${spec.name}`): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new InvalidArgumentError(script, spec.name, `${label} must be a non-empty string, got ${describe(value)}`);
  }
  // A lone UTF-16 surrogate is sent as U+FFFD: two different keys would name one Redis key.
  if (!(value as unknown as { isWellFormed(): boolean }).isWellFormed()) {
    throw new InvalidArgumentError(script, spec.name, `${label} must be well-formed text (it holds a lone UTF-16 surrogate, which would be sent as U+FFFD)`);
  }
  return value;
}

export function nonEmpty(script: string, name: string, list: readonly unknown[]): void {
  if (!Array.isArray(list) || list.length === 0) throw new InvalidArgumentError(script, name, `${name} must be a non-empty array`);
}

/** Drops trailing omitted optional arguments; an omitted one in the middle stays '' (= default). */
export function trimOptional(argv: string[]): string[] {
  let end = argv.length;
  while (end > 0 && argv[end - 1] === '') end--;
  return end === argv.length ? argv : argv.slice(0, end);
}

function missing(script: string, spec: ArgSpec, label: string): string {
  if (spec.required) throw new InvalidArgumentError(script, spec.name, `${label} is required`);
  return '';
}

function describe(value: unknown): string {
  if (typeof value === 'number') return String(value);
  if (typeof value === 'string') return JSON.stringify(value.slice(0, 40));
  return typeof value;
}
