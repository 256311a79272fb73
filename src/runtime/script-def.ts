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
  /**
   * Redis script flags besides `no-writes` (which readOnly stands for), from `@flags`: e.g.
   * `allow-cross-slot-keys` (Redis >= 7.0: the script may reach keys of several hash slots, all
   * on the node that runs it). Absent: none.
   */
  readonly flags?: readonly string[];
  readonly keys: readonly KeySpec[];
  readonly args: readonly ArgSpec[];
  readonly returns: readonly ReturnSpec[];
  readonly checks: readonly CheckSpec[];
  /**
   * Scripts over a list (multi): the list's name, the arguments each item carries (after the
   * fixed args, in ARGV, one group per variadic key) and the reply fields each item gets (after
   * the fixed returns). Without a variadic key the items are counted from ARGV alone (one group
   * each after the fixed args) and carry their keys, if any, as group arguments.
   */
  readonly each?: {
    readonly name: string;
    readonly args: readonly ArgSpec[];
    readonly returns: readonly ReturnSpec[];
    /**
     * An int argument's name when each item's reply is that many results, not one (tiers: one
     * key holds `count` limits, so each key gets `count` results, one per limit, in order).
     */
    readonly per?: string;
  };
}

/**
 * One parameter of an algorithm: an argument of its consume script (cost and now_ms aside), with
 * the name it has as an item of multi / batch (`item`: quota's utc_offset_ms is offset_ms there).
 */
export interface AlgorithmParam extends ArgSpec {
  readonly item: string;
  /** `item` in camelCase (the multi binding's item property). */
  readonly itemProp: string;
}

/**
 * What an algorithm is, derived by codegen from the script headers: a value of multi's `algo`
 * enum whose script answers a decision (block is an item kind, not an algorithm). Its companion
 * scripts follow the names `<algo>_peek`, `<algo>_refund`, `<algo>_reserve`.
 */
export interface AlgorithmDef {
  readonly name: string;
  readonly scripts: {
    readonly consume: string;
    readonly peek: string;
    readonly refund: string | null;
    readonly reserve: string | null;
  };
  /** The consume script's arguments that describe the limit (batch takes them once), in header order, with their ranges. */
  readonly params: readonly AlgorithmParam[];
  /** Its arguments that each call sets (batch takes them per decision): the cost, and any others. */
  readonly perCall: readonly AlgorithmParam[];
  /** The range of a cost (the consume script's `cost`). */
  readonly cost: { readonly min: number; readonly max: number };
  /** The parameter that is its capacity (what a fresh key holds): `burst` when it has one, else `limit`. */
  readonly capacity: string;
  /** It has a refund script: units taken can be given back. */
  readonly refundable: boolean;
  /** The consume script's cross-argument checks, by parameter name. */
  readonly checks: readonly { readonly name: string; readonly args: readonly string[] }[];
}

/** One field of a multi / batch item (multi's @group lines). */
export interface ItemField {
  readonly name: string;
  readonly prop: string;
  readonly default?: number | string | { readonly arg: string };
  readonly values?: readonly string[];
}

/**
 * Where decision results sit in a script's reply: the first at `offset`, then one every `stride`
 * numbers, each `fields` in order (allowed, remaining, reset_after_ms, retry_after_ms).
 */
export interface ReplyLayout {
  readonly offset: number;
  readonly stride: number;
}
