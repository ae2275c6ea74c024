/**
 * Descriptive statistics and confidence intervals. Pure: randomness comes from a seed (src/util/random.ts).
 *
 * - `describe()`: n, mean, median, sample std, CV, min/max, the headline 95 % CI (`ci95`, method
 *   `ci_method`, chosen by the interval policy in intervals.ts: Student t at every n), the "few cycles"
 *   note (`ci_note`, n < 5), the secondary bootstrap 95 % CI (BCa by default, percentile on request;
 *   computed from 30 values on, or at any n when asked for) and Tukey outliers (reported, never dropped).
 * - `tukeyOutliers()`, `quantileSorted()` (quantiles.ts), and the bootstrap (`bootstrapMeansStatistic`,
 *   `bootstrapMeanCi`, bootstrap.ts) that `describe()` and compare.ts use; the t, Welch and Fieller
 *   intervals and the policy live in intervals.ts. All are re-exported here.
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
import { bootstrapMeanCi, DEFAULT_RESAMPLES, type BootstrapMethod, type BootstrapResult } from './bootstrap.js';
import { quantileSorted, tukeyOutliers, type TukeyOutliers } from './quantiles.js';
import { fewCyclesNote, HEADLINE_METHOD, headlineInterval, showBootstrap, tInterval, type HeadlineMethod, type Interval } from './intervals.js';

export { bootstrapMeanCi, bootstrapMeansStatistic, DEFAULT_RESAMPLES, type BootstrapMethod, type BootstrapOptions, type BootstrapResult } from './bootstrap.js';
export { quantileSorted, tukeyOutliers, type OutlierPoint, type TukeyOutliers } from './quantiles.js';

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
  /**
   * Why no interval is given (the values are not repetitions of one quantity, e.g. one cycle's
   * runs of different experiments): every interval is then null and `ci_note` says why.
   */
  noInterval?: string;
}

export type BootstrapWhen = 'auto' | 'always' | 'never';

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
  const none = opts.noInterval !== undefined;
  const boot =
    !none && when !== 'never' && showBootstrap(n, when === 'always')
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
    ci95: none ? null : headlineInterval(xs, 0.95),
    ci_method: HEADLINE_METHOD,
    ci_note: opts.noInterval ?? fewCyclesNote(n),
    ci95_t: none ? null : tInterval(xs, 0.95),
    ci95_bootstrap: boot ? boot.interval : null,
    ci95_bootstrap_method: method,
    bootstrap: boot,
    outliers: tukeyOutliers(values),
  };
}
