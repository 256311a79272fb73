import { beforeEach } from 'vitest';

// Many tests count against hour- and day-long windows and quotas on the Redis server clock (the
// local server's clock is this machine's). A test that straddles the end of such a window sees
// its counts start afresh half-way (a CI run crossing midnight failed two tests that way). Every
// test therefore starts clear of a quarter-hour boundary (UTC: every whole-hour, half-hour and
// quarter-hour time zone's hours, days and months end on one): within CLEAR_MS of one, it waits
// until the boundary has passed. Waits at most CLEAR_MS, at most once per quarter hour per worker.
const QUARTER_HOUR_MS = 15 * 60_000;
const CLEAR_MS = 10_000;
// Taken before any test can install fake timers.
const realSetTimeout = globalThis.setTimeout;

beforeEach(async () => {
  const left = QUARTER_HOUR_MS - (Date.now() % QUARTER_HOUR_MS);
  if (left < CLEAR_MS) await new Promise((r) => realSetTimeout(r, left + 250));
});
