/**
 * Descriptive statistics and confidence intervals. Pure: randomness comes from a seed.
 * (Foundation version: t-interval and percentile bootstrap; BCa arrives with the results issue.)
 */
import { mean as ssMean, median as ssMedian, sampleStandardDeviation, quantileSorted } from 'simple-statistics';
import { createRng } from '../util/random.js';

export interface Interval {
  low: number;
  high: number;
}
export interface Description {
  n: number;
  mean: number;
  median: number;
  std: number | null;
  cv: number | null;
  min: number;
  max: number;
  ci95_t: Interval | null;
  ci95_bootstrap: Interval | null;
}
export interface DescribeOptions {
  seed: number | string;
  resamples?: number;
}

// Two-sided 97.5 % quantiles of Student's t for df = 1..30; beyond that the normal value.
const T975 = [
  12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131, 2.12, 2.11,
  2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042,
];
function t975(df: number): number {
  return T975[df - 1] ?? 1.96;
}

export function describe(values: readonly number[], opts: DescribeOptions): Description | null {
  const xs = values.filter((v) => Number.isFinite(v));
  const n = xs.length;
  if (n === 0) return null;
  const m = ssMean(xs);
  const sorted = xs.slice().sort((a, b) => a - b);
  const std = n >= 2 ? sampleStandardDeviation(xs) : null;
  const cv = std !== null && m !== 0 ? std / Math.abs(m) : null;
  let ciT: Interval | null = null;
  if (std !== null) {
    const half = (t975(n - 1) * std) / Math.sqrt(n);
    ciT = { low: m - half, high: m + half };
  }
  let ciB: Interval | null = null;
  if (n >= 2) {
    const rng = createRng(opts.seed);
    const b = opts.resamples ?? 10_000;
    const means = new Float64Array(b);
    for (let i = 0; i < b; i++) {
      let s = 0;
      for (let j = 0; j < n; j++) s += xs[rng.int(n)] as number;
      means[i] = s / n;
    }
    means.sort();
    const arr = Array.from(means);
    ciB = { low: quantileSorted(arr, 0.025), high: quantileSorted(arr, 0.975) };
  }
  return {
    n,
    mean: m,
    median: ssMedian(sorted),
    std,
    cv,
    min: sorted[0] as number,
    max: sorted[n - 1] as number,
    ci95_t: ciT,
    ci95_bootstrap: ciB,
  };
}
