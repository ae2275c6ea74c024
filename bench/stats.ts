/**
 * Statistics figures: the cost of the bootstrap (10 000 BCa resamples of n = 100, as `lem results
 * show --method bca` computes per metric) and the coverage table of lem's intervals (README
 * "Intervals"). Printed, never asserted.
 */
import { describe } from '../src/results/stats.js';
import { createRng } from '../src/util/random.js';
import { coverageTable } from './coverage.js';
import type { Figure } from './figure.js';

/** Median of 5 timed `describe()` calls with 10 000 BCa resamples of n = 100. */
export function benchBootstrap(): Figure[] {
  const rng = createRng('bench-bca');
  const xs = Array.from({ length: 100 }, () => 1 + rng.next() * rng.next() * 5);
  describe(xs, { seed: 'warm', bootstrap: 'always' });
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    describe(xs, { seed: i, bootstrap: 'always' });
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return [{ name: '10 000 BCa resamples of n = 100 (describe, median of 5)', value: times[2] as number, unit: 'ms', target: '≤ 50 ms' }];
}

/** The coverage table, as lines (2 000 samples per cell; BCa with 2 000 resamples). */
export function benchCoverage(replications = 2000, bootstrapResamples = 2000): string[] {
  return coverageTable(replications, bootstrapResamples);
}
