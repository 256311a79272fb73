/**
 * Where policies live: every key shares the `{policies}` hash tag, so one Redis Cluster slot holds
 * them all and a change is one atomic script.
 */
export class PolicyKeys {
  readonly version: string;
  readonly names: string;
  private readonly base: string;

  constructor(prefix: string) {
    this.base = `${prefix}:{policies}`;
    this.version = `${this.base}:version`;
    this.names = `${this.base}:names`;
  }

  doc(name: string): string {
    return `${this.base}:doc:${name}`;
  }

  history(name: string): string {
    return `${this.base}:history:${name}`;
  }

  adaptive(target: string): string {
    return `${this.base}:adaptive:${target}`;
  }
}

/** The channel policy_set and adaptive_feedback announce "<version> <name>" on. */
export const POLICY_CHANNEL = 'redlimit:policy';
