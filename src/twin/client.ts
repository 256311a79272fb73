import { allScripts } from '../../generated/index.js';
import type { ScriptDef } from '../runtime/script-def.js';
import type { ArgValues } from './args.js';
import type { DirectConsume } from './direct.js';
import { runTwinScript, twinError, twinScripts, type TwinCall } from './scripts.js';
import { MemoryStore } from './store.js';

const NO_KEYS: readonly string[] = Object.freeze([]);
const NO_ARGS: ArgValues = Object.freeze({}) as ArgValues;
/** Frozen: a script that pushed to it would throw, not leak into the next call. */
const NO_ITEMS = Object.freeze([]) as unknown as ArgValues[];

/**
 * A stand-in for a Redis client that runs every redlimit script on the in-memory twin. The
 * generated bindings accept it like any client (`gcra(twin, {...})`), so the same code path
 * serves Redis and the fallback. The clock is Date.now() unless given (tests, simulations).
 */
export class TwinClient {
  readonly store: MemoryStore;
  private readonly bySha = new Map<string, ScriptDef>();

  /** The call runParsed passes, reused: scripts run synchronously and keep nothing of it. */
  private readonly call: TwinCall;
  private running = false;

  constructor(options: { store?: MemoryStore; clock?: () => number; scripts?: readonly ScriptDef[] } = {}) {
    this.clock = options.clock ?? Date.now;
    // The store's idle sweep follows the latest time a call passed (scripts may run on now_ms
    // overrides far from this clock), never this clock directly.
    this.store = options.store ?? new MemoryStore();
    for (const def of options.scripts ?? allScripts) this.bySha.set(def.sha1, def);
    this.call = { store: this.store, keys: NO_KEYS, args: NO_ARGS, items: NO_ITEMS, now: 0, simulated: false, script: '' };
  }

  readonly clock: () => number;

  /**
   * Runs a script on arguments already parsed and checked (the limiter compiles them once): the
   * in-memory path with no strings to format or parse. Throws ScriptError as Redis would.
   */
  runParsed(def: ScriptDef, keys: readonly string[], args: ArgValues, items: ArgValues[] = NO_ITEMS, now = this.clock()): number[] {
    const impl = twinScripts[def.name]!;
    // A call from inside a call (none today) gets its own object.
    const c = this.running ? { ...this.call } : this.call;
    c.keys = keys;
    c.args = args;
    c.items = items;
    c.now = now;
    c.script = def.name;
    const outer = this.running;
    this.running = true;
    try {
      return impl(c);
    } catch (err) {
      throw twinError(err, def, this.store, keys, now);
    } finally {
      this.running = outer;
      if (!outer) {
        c.keys = NO_KEYS; // hold nothing of the caller's between calls
        c.args = NO_ARGS;
        c.items = NO_ITEMS;
      }
    }
  }

  /**
   * A single-key consume bound once (directConsume of `def`'s script) on `key`, its reply into
   * `out`: what runParsed of `def` answers, throwing what it throws, with no call object or reply.
   */
  runDirect(run: DirectConsume, def: ScriptDef, out: number[], key: string, cost: number, sharePpm: number | undefined, now: number): void {
    try {
      run(out, this.store, key, cost, sharePpm, now);
    } catch (err) {
      throw twinError(err, def, this.store, [key], now);
    }
  }

  /** Used by the runner's transport; answers like EVALSHA (NOSCRIPT for an unknown SHA). */
  redlimitTwinEval(sha: string, keys: string[], argv: string[]): Promise<unknown> {
    const def = this.bySha.get(sha);
    if (!def) return Promise.reject(Object.assign(new Error('NOSCRIPT No matching script in the twin'), { name: 'ReplyError' }));
    try {
      return Promise.resolve(runTwinScript(this.store, def, keys, argv, this.clock));
    } catch (err) {
      return Promise.reject(err);
    }
  }
}
