/**
 * Descriptive statistics and confidence intervals. Pure: randomness comes from a seed (src/util/random.ts).
 *
 * - `describe()`: n, mean, median, sample std, CV, min/max, the headline 95 % CI (`ci95`, method
 *   `ci_method`, chosen by the interval policy in intervals.ts: Student t at every n), the "few cycles"
 *   note (`ci_note`, n < 5), the secondary bootstrap 95 % CI (BCa by default, percentile on request;
 *   computed from 30 values on, or at any n when asked for) and Tukey outliers (reported, never dropped).
 * - `tukeyOutliers()`, `quantileSorted()`, and the bootstrap (`bootstrapMeansStatistic`,
 *   `bootstrapMeanCi`) that `describe()` and compare.ts use; the t, Welch and Fieller intervals and
 *   the policy live in intervals.ts and are re-exported here.
 * - The distributions (Student t, normal) and special functions live in distributions.ts and are
 *   re-exported here.
 *
 * Conventions (chosen to match SciPy/NumPy so results can be cross-checked):
 * - Quantiles of data use linear interpolation between order statistics (NumPy's default, R type 7).
 * - BCa follows scipy.stats.bootstrap(method='BCa'): bias-correction z0 = Φ⁻¹(proportion of bootstrap
 *   statistics below the estimate, ties counted half); acceleration from the jackknife
 *   a = Σ U³ / (6 (Σ U²)^{3/2}), U_i = (n−1)(θ̄₍.₎ − θ₍i₎), summed over each sample for multi-sample statistics.
 * - Degenerate samples (n < 2, all values equal, a non-finite statistic) give a null bootstrap interval,
 *   never NaN.
 */
import { mean, sampleStandardDeviation } from 'simple-statistics';
import { createRng } from '../util/random.js';
import { normalCdf, normalQuantile } from './distributions.js';
import { fewCyclesNote, HEADLINE_METHOD, headlineInterval, showBootstrap, tInterval, type HeadlineMethod, type Interval } from './intervals.js';

export {
  erfc,
  lnGamma,
  normalCdf,
  normalQuantile,
  regularizedGammaQ,
  regularizedIncompleteBeta,
  studentTCdf,
  studentTPdf,
  studentTQuantile,
} from './distributions.js';

export {
  BOOTSTRAP_MIN_N,
  FEW_CYCLES_N,
  fewCyclesNote,
  fiellerRatioInterval,
  HEADLINE_METHOD,
  headlineInterval,
  showBootstrap,
  tInterval,
  welchDifferenceInterval,
  type HeadlineMethod,
  type Interval,
} from './intervals.js';

export type BootstrapMethod = 'bca' | 'percentile';

export interface OutlierPoint {
  /** Index in the array passed to `describe`/`tukeyOutliers`. */
  index: number;
  value: number;
  side: 'low' | 'high';
}

/** Tukey fences: mild = beyond 1.5×IQR (but not beyond 3×IQR), extreme = beyond 3×IQR. */
export interface TukeyOutliers {
  q1: number;
  q3: number;
  iqr: number;
  fences: { mildLow: number; mildHigh: number; extremeLow: number; extremeHigh: number };
  mild: OutlierPoint[];
  extreme: OutlierPoint[];
}

export interface BootstrapResult {
  estimate: number;
  interval: Interval;
  method: BootstrapMethod;
  resamples: number;
  confidence: number;
  /** BCa bias correction; null for the percentile method. */
  z0: number | null;
  /** BCa acceleration; null for the percentile method. */
  acceleration: number | null;
}

export interface Description {
  n: number;
  mean: number;
  median: number;
  std: number | null;
  cv: number | null;
  min: number;
  max: number;
  /** The headline 95 % CI of the mean under lem's interval policy (intervals.ts); null for n < 2. */
  ci95: Interval | null;
  /** Which interval `ci95` is ('t': Student t). */
  ci_method: HeadlineMethod;
  /** The "few cycles" note for n < 5 (what the interval can and cannot show); null otherwise. */
  ci_note: string | null;
  /** Student-t 95 % CI (today the same interval as `ci95`). */
  ci95_t: Interval | null;
  /**
   * Secondary bootstrap CI of the mean by `ci95_bootstrap_method` (BCa by default); computed from
   * BOOTSTRAP_MIN_N (30) values on, or at any n ≥ 2 with `bootstrap: 'always'`; null otherwise.
   */
  ci95_bootstrap: Interval | null;
  ci95_bootstrap_method: BootstrapMethod;
  /** Details of the bootstrap (z0, acceleration, resamples); null when the interval is null. */
  bootstrap: BootstrapResult | null;
  outliers: TukeyOutliers;
}

export interface DescribeOptions {
  seed: number | string;
  /** Bootstrap resamples; default 10 000. */
  resamples?: number;
  /** Bootstrap method; default 'bca'. */
  method?: BootstrapMethod;
  /**
   * When to compute the secondary bootstrap interval: 'auto' (default) from BOOTSTRAP_MIN_N values
   * on, where its coverage holds; 'always' at any n ≥ 2 (an explicit request); 'never'.
   */
  bootstrap?: BootstrapWhen;
}

export type BootstrapWhen = 'auto' | 'always' | 'never';

export const DEFAULT_RESAMPLES = 10_000;

// ---------------------------------------------------------------------------------------------
// Data quantiles, intervals, outliers
// ---------------------------------------------------------------------------------------------

/** Quantile of sorted data by linear interpolation (NumPy 'linear', R type 7). */
export function quantileSorted(sorted: ArrayLike<number>, p: number): number {
  const n = sorted.length;
  if (n === 0) return Number.NaN;
  if (p <= 0) return sorted[0] as number;
  if (p >= 1) return sorted[n - 1] as number;
  const h = (n - 1) * p;
  const lo = Math.floor(h);
  const frac = h - lo;
  const a = sorted[lo] as number;
  if (frac === 0 || lo + 1 >= n) return a;
  const b = sorted[lo + 1] as number;
  return a + frac * (b - a);
}

/** Tukey fences at 1.5×IQR (mild) and 3×IQR (extreme), quartiles by linear interpolation. Non-finite values are ignored. */
export function tukeyOutliers(values: readonly number[]): TukeyOutliers {
  const indexed: { index: number; value: number }[] = [];
  values.forEach((value, index) => {
    if (Number.isFinite(value)) indexed.push({ index, value });
  });
  const sorted = indexed.map((p) => p.value).sort((a, b) => a - b);
  const q1 = quantileSorted(sorted, 0.25);
  const q3 = quantileSorted(sorted, 0.75);
  const iqr = q3 - q1;
  const fences = { mildLow: q1 - 1.5 * iqr, mildHigh: q3 + 1.5 * iqr, extremeLow: q1 - 3 * iqr, extremeHigh: q3 + 3 * iqr };
  const mild: OutlierPoint[] = [];
  const extreme: OutlierPoint[] = [];
  for (const { index, value } of indexed) {
    if (value < fences.extremeLow) extreme.push({ index, value, side: 'low' });
    else if (value > fences.extremeHigh) extreme.push({ index, value, side: 'high' });
    else if (value < fences.mildLow) mild.push({ index, value, side: 'low' });
    else if (value > fences.mildHigh) mild.push({ index, value, side: 'high' });
  }
  return { q1, q3, iqr, fences, mild, extreme };
}

// ---------------------------------------------------------------------------------------------
// Bootstrap
// ---------------------------------------------------------------------------------------------

export interface BootstrapOptions {
  seed: number | string;
  /** Default 10 000. */
  resamples?: number;
  /** Default 'bca'. */
  method?: BootstrapMethod;
  /** Default 0.95. */
  confidence?: number;
}

/**
 * Bootstrap CI of a statistic that is a function of the sample means of one or more independent
 * samples (e.g. the mean; the difference or ratio of two means). Each sample is resampled with
 * replacement independently. Returns null for degenerate input: any sample with n < 2, a non-finite
 * statistic, or a bootstrap distribution with no spread.
 */
export function bootstrapMeansStatistic(
  samples: readonly (readonly number[])[],
  statistic: (means: readonly number[]) => number,
  opts: BootstrapOptions,
): BootstrapResult | null {
  const k = samples.length;
  if (k === 0) return null;
  const data = samples.map((s) => Float64Array.from(s.filter((v) => Number.isFinite(v))));
  if (data.some((d) => d.length < 2)) return null;
  const sums = data.map((d) => d.reduce((a, b) => a + b, 0));
  const means = data.map((d, j) => (sums[j] as number) / d.length);
  const estimate = statistic(means);
  if (!Number.isFinite(estimate)) return null;

  const method = opts.method ?? 'bca';
  const confidence = opts.confidence ?? 0.95;
  const B = Math.max(1, Math.floor(opts.resamples ?? DEFAULT_RESAMPLES));
  const rng = createRng(opts.seed);
  const dist = new Float64Array(B);
  const work = new Array<number>(k).fill(0);
  for (let b = 0; b < B; b++) {
    for (let j = 0; j < k; j++) {
      const d = data[j] as Float64Array;
      const n = d.length;
      let s = 0;
      for (let i = 0; i < n; i++) s += d[Math.floor(rng.next() * n)] as number;
      work[j] = s / n;
    }
    const v = statistic(work);
    if (!Number.isFinite(v)) return null;
    dist[b] = v;
  }
  dist.sort();
  if ((dist[0] as number) === (dist[B - 1] as number)) return null;

  const alpha = (1 - confidence) / 2;
  if (method === 'percentile') {
    return {
      estimate,
      interval: { low: quantileSorted(dist, alpha), high: quantileSorted(dist, 1 - alpha) },
      method,
      resamples: B,
      confidence,
      z0: null,
      acceleration: null,
    };
  }

  // Bias correction: proportion below the estimate, ties counted half (SciPy's 'mean' kind).
  let below = 0;
  let equal = 0;
  for (let b = 0; b < B; b++) {
    const v = dist[b] as number;
    if (v < estimate) below++;
    else if (v === estimate) equal++;
  }
  const prop = (below + 0.5 * equal) / B;
  if (prop <= 0 || prop >= 1) return null;
  const z0 = normalQuantile(prop);

  // Acceleration from the jackknife, per sample (leave-one-out means).
  let num = 0;
  let den = 0;
  for (let j = 0; j < k; j++) {
    const d = data[j] as Float64Array;
    const n = d.length;
    const thetas = new Float64Array(n);
    const jm = means.slice();
    for (let i = 0; i < n; i++) {
      jm[j] = ((sums[j] as number) - (d[i] as number)) / (n - 1);
      thetas[i] = statistic(jm);
    }
    let dot = 0;
    for (let i = 0; i < n; i++) dot += thetas[i] as number;
    dot /= n;
    let s2 = 0;
    let s3 = 0;
    for (let i = 0; i < n; i++) {
      const u = (n - 1) * (dot - (thetas[i] as number));
      s2 += u * u;
      s3 += u * u * u;
    }
    num += s3 / (n * n * n);
    den += s2 / (n * n);
  }
  const acceleration = den > 0 ? num / (6 * Math.pow(den, 1.5)) : 0;
  const zLo = normalQuantile(alpha);
  const zHi = normalQuantile(1 - alpha);
  const adj = (z: number): number => normalCdf(z0 + (z0 + z) / (1 - acceleration * (z0 + z)));
  const a1 = adj(zLo);
  const a2 = adj(zHi);
  if (!Number.isFinite(a1) || !Number.isFinite(a2) || !Number.isFinite(acceleration)) return null;
  return {
    estimate,
    interval: { low: quantileSorted(dist, a1), high: quantileSorted(dist, a2) },
    method,
    resamples: B,
    confidence,
    z0,
    acceleration,
  };
}

/** Bootstrap CI of the mean of one sample (BCa by default). */
export function bootstrapMeanCi(values: readonly number[], opts: BootstrapOptions): BootstrapResult | null {
  return bootstrapMeansStatistic([values], (m) => m[0] as number, opts);
}

// ---------------------------------------------------------------------------------------------
// describe()
// ---------------------------------------------------------------------------------------------

/** Describes the finite values of a sample; null when there are none. Outlier indices refer to `values`. */
export function describe(values: readonly number[], opts: DescribeOptions): Description | null {
  const xs = values.filter((v) => Number.isFinite(v));
  const n = xs.length;
  if (n === 0) return null;
  const m = mean(xs);
  const sorted = xs.slice().sort((a, b) => a - b);
  const std = n >= 2 ? sampleStandardDeviation(xs) : null;
  const cv = std !== null && m !== 0 ? std / Math.abs(m) : null;
  const method = opts.method ?? 'bca';
  const when = opts.bootstrap ?? 'auto';
  const boot =
    when !== 'never' && showBootstrap(n, when === 'always')
      ? bootstrapMeanCi(xs, { seed: opts.seed, resamples: opts.resamples ?? DEFAULT_RESAMPLES, method })
      : null;
  return {
    n,
    mean: m,
    median: quantileSorted(sorted, 0.5),
    std,
    cv,
    min: sorted[0] as number,
    max: sorted[n - 1] as number,
    ci95: headlineInterval(xs, 0.95),
    ci_method: HEADLINE_METHOD,
    ci_note: fewCyclesNote(n),
    ci95_t: tInterval(xs, 0.95),
    ci95_bootstrap: boot ? boot.interval : null,
    ci95_bootstrap_method: method,
    bootstrap: boot,
    outliers: tukeyOutliers(values),
  };
}
