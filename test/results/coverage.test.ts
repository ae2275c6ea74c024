/**
 * Seeded coverage of lem's headline intervals (the interval policy, src/results/intervals.ts):
 * normal and right-skewed lognormal samples at the cycle counts people use. The normal case is
 * asserted (≥ 93 % for a nominal 95 %); the lognormal numbers are printed, not asserted (no
 * small-n interval holds its level for strongly skewed noise; the README says so).
 * The simulation here is independent of bench/coverage.ts (its own PRNG and loops).
 */
import { describe as suite, expect, it } from 'vitest';
import { describe, fiellerRatioInterval, headlineInterval, welchDifferenceInterval, type Interval } from '../../src/results/stats.js';
import { mulberry32 } from './helpers.js';

const NS = [2, 3, 5, 10, 30] as const;
const REPLICATIONS = 2000;

function gauss(rnd: () => number): number {
  return Math.sqrt(-2 * Math.log(rnd() || 1e-300)) * Math.cos(2 * Math.PI * rnd());
}
const normal = (rnd: () => number): number => 100 + 10 * gauss(rnd);
/** Lognormal σ = 0.5 on the log scale (skewness ≈ 1.75, CV ≈ 53 %), mean 100, as in bench/coverage.ts. */
const lognormal = (rnd: () => number): number => 100 * Math.exp(0.5 * gauss(rnd) - 0.125);
const covers = (i: Interval | null, truth: number): boolean => i !== null && i.low <= truth && truth <= i.high;

function coverage(draw: (r: () => number) => number, n: number, seed: number): number {
  const rnd = mulberry32(seed);
  let hit = 0;
  const xs = new Array<number>(n);
  for (let k = 0; k < REPLICATIONS; k++) {
    for (let i = 0; i < n; i++) xs[i] = draw(rnd);
    if (covers(headlineInterval(xs), 100)) hit++;
  }
  return hit / REPLICATIONS;
}

suite('coverage of the headline interval (seeded simulation, 2 000 samples per n)', () => {
  it('describe() reports the headline interval this simulation measures', () => {
    const rnd = mulberry32(99);
    for (const n of NS) {
      const xs = Array.from({ length: n }, () => normal(rnd));
      expect(describe(xs, { seed: 1, bootstrap: 'never' })?.ci95).toEqual(headlineInterval(xs));
    }
  });

  it('normal noise: ≥ 93 % at every n (nominal 95 %); lognormal reported', () => {
    const rows: string[] = [];
    const normalCov: number[] = [];
    for (const n of NS) {
      const c = coverage(normal, n, 1000 + n);
      const l = coverage(lognormal, n, 2000 + n);
      normalCov.push(c);
      rows.push(`n=${String(n).padEnd(3)} normal ${(100 * c).toFixed(1)} %   lognormal(σ=0.5) ${(100 * l).toFixed(1)} %`);
    }
    console.log(`headline (t) 95 % interval coverage, ${REPLICATIONS} seeded samples each:\n${rows.join('\n')}`);
    for (const [i, c] of normalCov.entries()) expect(c, `n = ${NS[i]}`).toBeGreaterThanOrEqual(0.93);
  });

  it('compare: Welch difference and Fieller ratio intervals hold ≥ 93 % on normal noise at every n per side', () => {
    // B's mean is 1.1 × A's. An unbounded Fieller set makes compare answer "inconclusive", never a
    // wrong verdict, so it counts as covering.
    for (const n of NS) {
      const rnd = mulberry32(3000 + n);
      let d = 0;
      let r = 0;
      const a = new Array<number>(n);
      const b = new Array<number>(n);
      for (let k = 0; k < REPLICATIONS; k++) {
        for (let i = 0; i < n; i++) a[i] = normal(rnd);
        for (let i = 0; i < n; i++) b[i] = 1.1 * normal(rnd);
        if (covers(welchDifferenceInterval(a, b), 10)) d++;
        const f = fiellerRatioInterval(a, b);
        if (f.unbounded || covers(f.interval, 1.1)) r++;
      }
      expect(d / REPLICATIONS, `difference, n = ${n}`).toBeGreaterThanOrEqual(0.93);
      expect(r / REPLICATIONS, `ratio, n = ${n}`).toBeGreaterThanOrEqual(0.93);
    }
  });
});
