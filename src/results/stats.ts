/**
 * Descriptive statistics and confidence intervals. Pure: randomness comes from a seed (src/util/random.ts).
 *
 * - `describe()`: n, mean, median, sample std, CV, min/max, Student-t 95 % CI, bootstrap 95 % CI
 *   (BCa by default, percentile on request) and Tukey outliers (reported, never dropped).
 * - Special functions (log-gamma, regularized incomplete beta/gamma) back an exact Student t CDF and
 *   quantile for any real df > 0, and the normal CDF/quantile used by BCa.
 *
 * Conventions (chosen to match SciPy/NumPy so results can be cross-checked):
 * - Quantiles of data use linear interpolation between order statistics (NumPy's default, R type 7).
 * - BCa follows scipy.stats.bootstrap(method='BCa'): bias-correction z0 = Φ⁻¹(proportion of bootstrap
 *   statistics below the estimate, ties counted half); acceleration from the jackknife
 *   a = Σ U³ / (6 (Σ U²)^{3/2}), U_i = (n−1)(θ̄₍.₎ − θ₍i₎), summed over each sample for multi-sample statistics.
 * - Degenerate samples (n < 2, all values equal, a non-finite statistic) give a null bootstrap interval,
 *   never NaN.
 */
import { createRng } from '../util/random.js';

export interface Interval {
  low: number;
  high: number;
}

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
  ci95_t: Interval | null;
  /** Bootstrap CI of the mean by `ci95_bootstrap_method` (BCa by default). */
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
}

export const DEFAULT_RESAMPLES = 10_000;

// ---------------------------------------------------------------------------------------------
// Special functions
// ---------------------------------------------------------------------------------------------

const LANCZOS_G = 7;
const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
  12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
];

/** ln Γ(x) for x > 0 (Lanczos, g = 7; relative error ~1e-15). */
export function lnGamma(x: number): number {
  if (x < 0.5) {
    // Reflection: Γ(x)Γ(1−x) = π / sin(πx)
    return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - lnGamma(1 - x);
  }
  const z = x - 1;
  let a = LANCZOS[0] as number;
  const t = z + LANCZOS_G + 0.5;
  for (let i = 1; i < LANCZOS.length; i++) a += (LANCZOS[i] as number) / (z + i);
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(a);
}

const FPMIN = 1e-300;
const EPS = 1e-16;

/** Continued fraction for the incomplete beta function (modified Lentz). */
function betaContinuedFraction(a: number, b: number, x: number): number {
  const qab = a + b;
  const qap = a + 1;
  const qam = a - 1;
  let c = 1;
  let d = 1 - (qab * x) / qap;
  if (Math.abs(d) < FPMIN) d = FPMIN;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 20_000; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((qam + m2) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < FPMIN) d = FPMIN;
    c = 1 + aa / c;
    if (Math.abs(c) < FPMIN) c = FPMIN;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (qab + m) * x) / ((a + m2) * (qap + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < FPMIN) d = FPMIN;
    c = 1 + aa / c;
    if (Math.abs(c) < FPMIN) c = FPMIN;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < EPS) break;
  }
  return h;
}

/** Regularized incomplete beta I_x(a, b) for a, b > 0, x in [0, 1]. */
export function regularizedIncompleteBeta(x: number, a: number, b: number): number {
  if (!(a > 0) || !(b > 0) || Number.isNaN(x)) return Number.NaN;
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const lnFront = lnGamma(a + b) - lnGamma(a) - lnGamma(b) + a * Math.log(x) + b * Math.log1p(-x);
  const front = Math.exp(lnFront);
  if (x < (a + 1) / (a + b + 2)) return (front * betaContinuedFraction(a, b, x)) / a;
  return 1 - (front * betaContinuedFraction(b, a, 1 - x)) / b;
}

/** Regularized upper incomplete gamma Q(a, x) = Γ(a, x)/Γ(a), for a > 0, x ≥ 0. */
export function regularizedGammaQ(a: number, x: number): number {
  if (!(a > 0) || !(x >= 0)) return Number.NaN;
  if (x === 0) return 1;
  const lnFront = -x + a * Math.log(x) - lnGamma(a);
  if (x < a + 1) {
    // Series for P(a, x).
    let ap = a;
    let del = 1 / a;
    let sum = del;
    for (let n = 1; n <= 10_000; n++) {
      ap += 1;
      del *= x / ap;
      sum += del;
      if (Math.abs(del) < Math.abs(sum) * EPS) break;
    }
    return 1 - sum * Math.exp(lnFront);
  }
  // Continued fraction for Q(a, x) (modified Lentz).
  let b = x + 1 - a;
  let c = 1 / FPMIN;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i <= 10_000; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < FPMIN) d = FPMIN;
    c = b + an / c;
    if (Math.abs(c) < FPMIN) c = FPMIN;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < EPS) break;
  }
  return Math.exp(lnFront) * h;
}

/** Complementary error function (via Q(1/2, x²)); accurate to ~1e-15 relative. */
export function erfc(x: number): number {
  if (Number.isNaN(x)) return Number.NaN;
  if (x < 0) return 2 - erfc(-x);
  return regularizedGammaQ(0.5, x * x);
}

/** Standard normal CDF Φ(z). */
export function normalCdf(z: number): number {
  return 0.5 * erfc(-z / Math.SQRT2);
}

// Acklam's rational approximation, refined with Halley steps on the accurate CDF.
const ACK_A = [-39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716, 2.506628277459239];
const ACK_B = [-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572];
const ACK_C = [-0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
const ACK_D = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];

function poly(coeffs: readonly number[], x: number): number {
  let r = 0;
  for (const c of coeffs) r = r * x + c;
  return r;
}

/** Standard normal quantile Φ⁻¹(p); ±Infinity at 0 and 1, NaN outside [0, 1]. */
export function normalQuantile(p: number): number {
  if (Number.isNaN(p) || p < 0 || p > 1) return Number.NaN;
  if (p === 0) return -Infinity;
  if (p === 1) return Infinity;
  const pLow = 0.02425;
  let x: number;
  if (p < pLow) {
    const q = Math.sqrt(-2 * Math.log(p));
    x = poly(ACK_C, q) / (poly(ACK_D, q) * q + 1);
  } else if (p <= 1 - pLow) {
    const q = p - 0.5;
    const r = q * q;
    x = (poly(ACK_A, r) * q) / (poly(ACK_B, r) * r + 1);
  } else {
    const q = Math.sqrt(-2 * Math.log1p(-p));
    x = -poly(ACK_C, q) / (poly(ACK_D, q) * q + 1);
  }
  for (let i = 0; i < 2; i++) {
    // Work on the smaller tail to keep relative precision.
    const e = p < 0.5 ? normalCdf(x) - p : 1 - p - normalCdf(-x);
    const u = e * Math.sqrt(2 * Math.PI) * Math.exp((x * x) / 2);
    x = x - u / (1 + (x * u) / 2);
  }
  return x;
}

/** Beyond this many degrees of freedom t is treated as normal (difference < 1e-7 relative). */
const T_NORMAL_DF = 1e7;

/** Upper tail P(T > t) for t ≥ 0, computed without cancellation. */
function studentTUpperTail(t: number, df: number): number {
  const x = df / (df + t * t);
  return 0.5 * regularizedIncompleteBeta(x, df / 2, 0.5);
}

/** CDF of Student's t with `df` > 0 degrees of freedom (real df allowed). */
export function studentTCdf(t: number, df: number): number {
  if (!(df > 0) || Number.isNaN(t)) return Number.NaN;
  if (t === Infinity) return 1;
  if (t === -Infinity) return 0;
  if (df > T_NORMAL_DF) return normalCdf(t);
  const tail = studentTUpperTail(Math.abs(t), df);
  return t >= 0 ? 1 - tail : tail;
}

/** Density of Student's t. */
export function studentTPdf(t: number, df: number): number {
  const lnC = lnGamma((df + 1) / 2) - lnGamma(df / 2) - 0.5 * Math.log(df * Math.PI);
  return Math.exp(lnC - ((df + 1) / 2) * Math.log1p((t * t) / df));
}

/**
 * Quantile (inverse CDF) of Student's t: the t with P(T ≤ t) = p, for any real df > 0.
 * Solves the upper tail 0.5·I_{df/(df+t²)}(df/2, 1/2) = 1 − p by safeguarded Newton iteration.
 */
export function studentTQuantile(p: number, df: number): number {
  if (!(df > 0) || Number.isNaN(p) || p < 0 || p > 1) return Number.NaN;
  if (p === 0) return -Infinity;
  if (p === 1) return Infinity;
  if (p === 0.5) return 0;
  if (df > T_NORMAL_DF) return normalQuantile(p);
  if (p < 0.5) return -studentTQuantile(1 - p, df);
  const target = 1 - p; // upper-tail probability, in (0, 0.5)
  // Bracket: tail(lo) > target ≥ tail(hi).
  let lo = 0;
  let hi = Math.max(1, normalQuantile(p));
  while (studentTUpperTail(hi, df) > target) {
    lo = hi;
    hi *= 2;
    if (hi > 1e300) return Infinity;
  }
  let t = (lo + hi) / 2;
  for (let i = 0; i < 200; i++) {
    const f = studentTUpperTail(t, df) - target; // decreasing in t
    if (f === 0) return t;
    if (f > 0) lo = t;
    else hi = t;
    const step = f / studentTPdf(t, df); // Newton: t_new = t − f/f', f' = −pdf
    let next = t + step;
    if (!(next > lo && next < hi) || !Number.isFinite(next)) next = (lo + hi) / 2;
    if (Math.abs(next - t) <= 1e-15 * Math.max(1, Math.abs(t))) return next;
    t = next;
  }
  return t;
}

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

function sampleMean(xs: readonly number[]): number {
  let s = 0;
  for (const x of xs) s += x;
  return s / xs.length;
}

function sampleStd(xs: readonly number[], m: number): number {
  let ss = 0;
  for (const x of xs) ss += (x - m) * (x - m);
  return Math.sqrt(ss / (xs.length - 1));
}

/** Student-t confidence interval of the mean; null for n < 2. Equal values give a zero-width interval. */
export function tInterval(values: readonly number[], confidence = 0.95): Interval | null {
  const xs = values.filter((v) => Number.isFinite(v));
  const n = xs.length;
  if (n < 2) return null;
  const m = sampleMean(xs);
  const s = sampleStd(xs, m);
  const half = (studentTQuantile(1 - (1 - confidence) / 2, n - 1) * s) / Math.sqrt(n);
  return { low: m - half, high: m + half };
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
  const m = sampleMean(xs);
  const sorted = xs.slice().sort((a, b) => a - b);
  const std = n >= 2 ? sampleStd(xs, m) : null;
  const cv = std !== null && m !== 0 ? std / Math.abs(m) : null;
  const method = opts.method ?? 'bca';
  const boot = bootstrapMeanCi(xs, { seed: opts.seed, resamples: opts.resamples ?? DEFAULT_RESAMPLES, method });
  return {
    n,
    mean: m,
    median: quantileSorted(sorted, 0.5),
    std,
    cv,
    min: sorted[0] as number,
    max: sorted[n - 1] as number,
    ci95_t: tInterval(xs, 0.95),
    ci95_bootstrap: boot ? boot.interval : null,
    ci95_bootstrap_method: method,
    bootstrap: boot,
    outliers: tukeyOutliers(values),
  };
}
