/** The limits of the multi-process reservation test: none refills a whole unit within a day. */
export const MAX_OVERAGE = 30;
export const DAY = 86_400_000;
export const LIMITS = (windowOffsetMs: number) => [
  { name: 'rpm', algo: 'gcra', limit: 1, periodMs: DAY, burst: 400 },
  { name: 'tpm', algo: 'gcra', limit: 10, periodMs: DAY, burst: 20_000 },
  // A 366-day window that began a second before the test: it cannot roll over during it.
  { name: 'window', algo: 'fixed_window', limit: 15_000, periodMs: 366 * DAY, offsetMs: windowOffsetMs },
];
