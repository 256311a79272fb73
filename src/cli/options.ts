/** The command-line options shared by commands, and what they mean: limits, subjects, whole numbers. */
import { Command, InvalidArgumentError as CommanderArgumentError, Option } from 'commander';
import { algoNames, algorithms, type AlgoName } from '../../generated/index.js';
import type { LimitSpec } from '../client/config.js';
import type { Subject } from '../client/keys.js';
import { CliError } from './output.js';

/** The command-line option that sets each limit parameter (the others take their defaults). */
const PARAM_FLAGS: Readonly<Record<string, 'limit' | 'period' | 'burst' | 'unit'>> = { limit: 'limit', periodMs: 'period', burst: 'burst', unit: 'unit' };

/** The algorithms that take a parameter, and those that do not, for option help. */
function takers(prop: string): { yes: string[]; no: string[] } {
  const yes = algoNames.filter((a) => algorithms[a].params.some((p) => p.prop === prop));
  return { yes, no: algoNames.filter((a) => !yes.includes(a)) };
}

export function int(name: string, min = 0) {
  return (raw: string): number => {
    if (!/^\d+$/.test(raw) || Number(raw) < min) throw new CommanderArgumentError(`${name} must be a whole number${min ? ` >= ${min}` : ''}, got ${JSON.stringify(raw)}`);
    return Number(raw);
  };
}

export interface LimitFlags {
  algo: AlgoName;
  limit: number;
  period?: number;
  burst?: number;
  unit?: string;
  name: string;
  scopedBy?: string;
}

/** A limit from the command line: each parameter of the algorithm from its option (a required calendar unit defaults to its first value). */
export function limitFrom(o: LimitFlags): LimitSpec {
  const spec: Record<string, unknown> = { name: o.name, algo: o.algo };
  for (const p of algorithms[o.algo].params) {
    const flag = PARAM_FLAGS[p.prop];
    if (flag === undefined) continue;
    const value = o[flag] ?? (p.type === 'enum' && p.required ? p.values![0] : undefined);
    if (value !== undefined) spec[p.prop] = value;
    else if (p.required) throw new CliError(`--${flag} is required for --algo ${o.algo}`, 2);
  }
  if (o.scopedBy) spec.scope = o.scopedBy;
  return spec as LimitSpec;
}

/** The subject options every command that takes a subject shares (peek, reset, top). */
export interface SubjectOptions {
  hashTag?: string;
  scope?: Record<string, string>;
  scopedBy?: string;
}

function scopePair(raw: string, previous: Record<string, string> | undefined): Record<string, string> {
  const eq = raw.indexOf('=');
  if (eq <= 0) throw new CommanderArgumentError(`--scope must be name=value (e.g. --scope org=acme), got ${JSON.stringify(raw)}`);
  const scopes = { ...previous };
  scopes[raw.slice(0, eq)] = raw.slice(eq + 1);
  return scopes;
}

export const subjectOptions = (c: Command, what: string) =>
  c
    .option('--hash-tag <tag>', `${what}'s hash tag (the { } part of its keys; default: the id)`)
    .option('--scope <name=value>', `${what}'s scopes, e.g. --scope org=acme (repeatable)`, scopePair)
    .option('--scoped-by <scope>', "the limit is keyed by this scope of the subject (the limit's scope option), e.g. org");

/** A subject from the command line: an id, or { id, hashTag, scopes } when those are given. */
export function subjectFrom(id: string, o: SubjectOptions): Subject {
  if (o.hashTag === undefined && o.scope === undefined) return id;
  return { id, ...(o.hashTag !== undefined ? { hashTag: o.hashTag } : {}), ...(o.scope ? { scopes: o.scope } : {}) };
}

/** Limit names as the limiter accepts them (they are part of every key). */
export const LIMIT_NAME = /^[A-Za-z0-9_-]{1,64}$/;

/** --algo and the options of its parameters (--period, --burst, --unit), from the algorithm table. */
export function algoOptions(c: Command): Command {
  const period = takers('periodMs');
  const burst = takers('burst');
  const unit = takers('unit');
  const units = algorithms[unit.yes[0] as AlgoName]?.params.find((p) => p.prop === 'unit')?.values ?? [];
  return c
    .addOption(new Option('--algo <algo>', 'algorithm').choices(algoNames).default(algoNames[0]))
    .option('--period <ms>', `period in ms (${period.no.length ? `all but ${period.no.join(' / ')}` : 'every algorithm'})`, int('--period', 1))
    .option('--burst <n>', `${burst.yes.join(' / ')} capacity`, int('--burst', 1))
    .addOption(new Option('--unit <unit>', `${unit.yes.join(' / ')} period`).choices(units));
}

export const limitOptions = (c: Command) =>
  algoOptions(c.requiredOption('--limit <n>', `units per period (per calendar unit for ${takers('unit').yes.join(' / ')})`, int('--limit', 1)))
    .option('--name <name>', 'the limit name in the keys', 'default')
    .option('--prefix <prefix>', 'key prefix', 'rl')
    .option('--url <url>', 'Redis URL', process.env.REDIS_URL ?? 'redis://127.0.0.1:6379')
    .option('--cluster', 'the URL is a Redis Cluster node')
    .option('--json', 'JSON output');

