/**
 * The contract of one Lua script as the generated bindings carry it. Codegen builds these from
 * the script headers in scripts-lua/; generated/manifest.json holds the same data for other
 * languages.
 */
export type ArgType = 'int' | 'string' | 'enum';
export type ReturnType = 'bool' | 'int' | 'string';

export interface ArgSpec {
  /** Name in the Lua header (snake_case). */
  readonly name: string;
  /** Property name in the TypeScript binding (camelCase). */
  readonly prop: string;
  readonly type: ArgType;
  readonly required: boolean;
  /** A literal default, or `{ arg }` to default to another argument's value. */
  readonly default?: number | string | { readonly arg: string };
  readonly min?: number;
  readonly max?: number;
  readonly maxLength?: number;
  /** The allowed values of an enum argument. */
  readonly values?: readonly string[];
  readonly doc: string;
}

export interface KeySpec {
  readonly name: string;
  readonly prop: string;
  /** The last key may repeat: one per item of the script's `each` list. */
  readonly variadic?: boolean;
  /** A variadic key that may stand more than once in one call (each item is independent). */
  readonly repeats?: boolean;
  readonly doc: string;
}

export interface ReturnSpec {
  readonly name: string;
  readonly prop: string;
  readonly type: ReturnType;
  readonly doc: string;
}

export interface CheckSpec {
  readonly name: string;
  readonly args: readonly string[];
  readonly doc: string;
}

export interface ScriptDef {
  readonly name: string;
  readonly version: number;
  readonly summary: string;
  readonly sha1: string;
  /** The exact bytes that get loaded (generated/lua/<name>.lua). */
  readonly source: string;
  readonly readOnly: boolean;
  readonly keys: readonly KeySpec[];
  readonly args: readonly ArgSpec[];
  readonly returns: readonly ReturnSpec[];
  readonly checks: readonly CheckSpec[];
  /**
   * Scripts over a list (multi): the list's name, the arguments each item carries (after the
   * fixed args, in ARGV, one group per variadic key) and the reply fields each item gets (after
   * the fixed returns).
   */
  readonly each?: {
    readonly name: string;
    readonly args: readonly ArgSpec[];
    readonly returns: readonly ReturnSpec[];
  };
}
