import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Test files start worker threads and servers; two cores do not gain from running many at once.
    maxWorkers: 2,
    reporters: ['default'],
  },
});
