import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Each test file gets its own device-lock directory (LEM_LOCK_DIR).
    setupFiles: ['test/helpers/lock-dir.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // End-to-end tests measure real work; on a 2-core machine two files at a time is the sane limit.
    maxWorkers: 2,
  },
});
