import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    setupFiles: ['test/setup-clock.ts'],
    // CI runs the suite beside a CPU hog on every core: starting redis-servers and clusters, or
    // node processes with tsx, takes a while there. Tests bound their own waits. The longest
    // property tests (tiers, tiers_reserve, the twin's key store, the CLI) take 45–55 s beside
    // stress-ng --cpu 4 (6–9 s on a quiet machine) and two went past 60 s in a run: the limit is
    // a hang's bound, not a speed check.
    testTimeout: 180_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
