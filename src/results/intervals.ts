/**
 * lem's interval policy: which confidence interval a published number carries. Pure.
 *
 * The headline interval must hold its nominal coverage at the n it is computed from, and lem's n is
 * the number of cycles: 2, 3 (the default) or 5, rarely 30. Coverage (%) of nominal 95 % intervals
 * for the mean, measured by `npm run bench` (bench/coverage.ts: seeded, 2 000 samples per cell, BCa
 * with 2 000 resamples; test/results/coverage.test.ts re-measures the headline independently):
 *
 *   n                                 2      3      5     10     30
 *   normal(100, 10)    t (headline)  95.3   95.2   94.5   95.5   95.0
 *   normal(100, 10)    BCa           49.5   73.9   83.0   91.0   93.2
 *   lognormal(σ=0.5)   t (headline)  94.0   92.4   92.9   92.8   93.2
 *   lognormal(σ=0.5)   BCa           47.4   69.0   81.6   88.0   92.2
 *
 * (README "Intervals" carries the measured table.) Hence:
 * - Headline: the Student-t interval of the mean at every n ≥ 2 (exact quantiles, distributions.ts).
 *   It is exact for normal run-to-run noise and degrades gracefully for skewed noise; BCa cannot
 *   reach its nominal level at small n whatever the distribution (with n = 2 the bootstrap world has
 *   at most three distinct means).
 * - Secondary (bootstrap) interval: shown by default only from BOOTSTRAP_MIN_N = 30 values, where
 *   BCa's coverage on normal data reaches ~93 %; below that it is computed only on explicit request
 *   (`--method bca|percentile`), and then labelled as the secondary interval, never the headline.
 * - Comparisons (B vs A): Welch's t interval for the difference of means and Fieller's interval for
 *   the ratio of means (see fiellerRatioInterval), both valid at small n under roughly normal noise.
 * - Fewer than FEW_CYCLES_N values: a note says what the interval can and cannot show.
 */
import { studentTQuantile } from './distributions.js';

export interface Interval {
  low: number;
  high: number;
}

/** Headline interval of one mean: Student t. */
export type HeadlineMethod = 't';
/** Interval of a difference / ratio of two independent means. */
export type DifferenceMethod = 'welch_t';
export type RatioMethod = 'fieller';

export const HEADLINE_METHOD: HeadlineMethod = 't';
/** From this many values the bootstrap interval is shown by default (see the coverage table above). */
export const BOOTSTRAP_MIN_N = 30;
/** Below this many values the "few cycles" note is attached. */
export const FEW_CYCLES_N = 5;

/** What an interval from fewer than FEW_CYCLES_N values can and cannot show; null from FEW_CYCLES_N on. */
export function fewCyclesNote(n: number): string | null {
  if (n >= FEW_CYCLES_N) return null;
  if (n < 2) return `n = ${n}: no interval (at least 2 cycles are needed to see run-to-run variation).`;
  return (
    `few cycles (n = ${n}): the t interval is wide (t quantile ${studentTQuantile(0.975, n - 1).toFixed(2)} × std/√n), ` +
    'assumes roughly normal, independent run-to-run noise, and cannot show drift, outliers or the shape of the noise; ' +
    `run at least ${FEW_CYCLES_N} cycles for a spread you can judge.`
  );
}

/** Whether the bootstrap (secondary) interval is computed: from BOOTSTRAP_MIN_N values, or at any n when asked for explicitly. */
export function showBootstrap(n: number, explicit: boolean): boolean {
  return n >= 2 && (explicit || n >= BOOTSTRAP_MIN_N);
}

function meanVar(xs: readonly number[]): { n: number; mean: number; variance: number } {
  const n = xs.length;
  let m = 0;
  for (const x of xs) m += x;
  m /= n;
  let ss = 0;
  for (const x of xs) ss += (x - m) * (x - m);
  return { n, mean: m, variance: n > 1 ? ss / (n - 1) : Number.NaN };
}

/**
 * Student-t confidence interval of the mean of the finite values; null for n < 2. Equal values
 * give a zero-width interval. This is the headline interval.
 */
export function tInterval(values: readonly number[], confidence = 0.95): Interval | null {
  const xs = values.filter((v) => Number.isFinite(v));
  if (xs.length < 2) return null;
  const { n, mean, variance } = meanVar(xs);
  const half = (studentTQuantile(1 - (1 - confidence) / 2, n - 1) * Math.sqrt(variance)) / Math.sqrt(n);
  return { low: mean - half, high: mean + half };
}

/** The headline interval of a mean under lem's policy (today: the t interval at every n). */
export function headlineInterval(values: readonly number[], confidence = 0.95): Interval | null {
  return tInterval(values, confidence);
}

/** Welch–Satterthwaite degrees of freedom of a·x̄ + b·ȳ with variances of the means va, vb. */
function welchDf(va: number, na: number, vb: number, nb: number): number {
  const num = (va + vb) ** 2;
  const den = (va * va) / (na - 1) + (vb * vb) / (nb - 1);
  return den > 0 ? num / den : Number.POSITIVE_INFINITY;
}

/**
 * Welch's t interval for mean(B) − mean(A) (unequal variances, Satterthwaite df). Null when a side
 * has fewer than 2 finite values; zero-width when neither side varies.
 */
export function welchDifferenceInterval(a: readonly number[], b: readonly number[], confidence = 0.95): Interval | null {
  const xa = a.filter((v) => Number.isFinite(v));
  const xb = b.filter((v) => Number.isFinite(v));
  if (xa.length < 2 || xb.length < 2) return null;
  const A = meanVar(xa);
  const B = meanVar(xb);
  const d = B.mean - A.mean;
  const va = A.variance / A.n;
  const vb = B.variance / B.n;
  if (va + vb === 0) return { low: d, high: d };
  const q = studentTQuantile(1 - (1 - confidence) / 2, welchDf(va, A.n, vb, B.n));
  const half = q * Math.sqrt(va + vb);
  return { low: d - half, high: d + half };
}

/**
 * Fieller's interval for the ratio of means ρ = mean(B) / mean(A) of two independent samples.
 *
 * Why Fieller rather than a t interval on log values: the log-t interval covers the ratio of
 * *geometric* means (equal to the ratio of means only when both sides have the same CV), and it
 * needs every value > 0; Fieller covers the ratio of the arithmetic means lem reports, for any
 * sign, and is exact for normal noise up to the df approximation. It inverts the pivot
 *   T(ρ) = (x̄_B − ρ x̄_A) / √(s_B²/n_B + ρ² s_A²/n_A)
 * — the set of ρ with T(ρ)² ≤ q² — with q the t quantile at the Welch–Satterthwaite df of
 * x̄_B − ρ̂ x̄_A. The set is a bounded interval only when mean(A) is clearly away from zero
 * (x̄_A² > q² s_A²/n_A); otherwise the ratio is not bounded by the data and this returns null
 * with `unbounded: true`. Zero-width when neither side varies.
 */
export function fiellerRatioInterval(
  a: readonly number[],
  b: readonly number[],
  confidence = 0.95,
): { interval: Interval | null; unbounded: boolean } {
  const xa = a.filter((v) => Number.isFinite(v));
  const xb = b.filter((v) => Number.isFinite(v));
  if (xa.length < 2 || xb.length < 2) return { interval: null, unbounded: false };
  const A = meanVar(xa);
  const B = meanVar(xb);
  if (A.mean === 0) return { interval: null, unbounded: true };
  const r = B.mean / A.mean;
  const va = A.variance / A.n;
  const vb = B.variance / B.n;
  if (va + vb === 0) return { interval: { low: r, high: r }, unbounded: false };
  const q = studentTQuantile(1 - (1 - confidence) / 2, welchDf(r * r * va, A.n, vb, B.n));
  const q2 = q * q;
  // ρ²(x̄a² − q²va) − 2ρ x̄a x̄b + (x̄b² − q²vb) ≤ 0
  const qa = A.mean * A.mean - q2 * va;
  if (qa <= 0) return { interval: null, unbounded: true };
  const disc = q2 * (A.mean * A.mean * vb + B.mean * B.mean * va - q2 * va * vb);
  if (disc < 0) return { interval: null, unbounded: true };
  const root = Math.sqrt(disc);
  return { interval: { low: (A.mean * B.mean - root) / qa, high: (A.mean * B.mean + root) / qa }, unbounded: false };
}
