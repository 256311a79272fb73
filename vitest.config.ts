import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    setupFiles: ['test/setup-clock.ts'],
    // CI runs the suite beside a CPU hog on every core: starting redis-servers and clusters, or
    // node processes with tsx, takes a while there. Tests bound their own waits.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
