/** Benches beyond the per-script server cost; each returns printable lines. */
export const benches: (() => Promise<string[]>)[] = [];
