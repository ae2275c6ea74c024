/**
 * The bootstrap: percentile and BCa confidence intervals of a statistic of one or more sample means,
 * seeded (src/util/random.ts). BCa follows scipy.stats.bootstrap(method='BCa') (see stats.ts for the
 * conventions). Degenerate samples give null, never NaN. Re-exported by stats.ts.
 */
import { createRng } from '../util/random.js';
import { normalCdf, normalQuantile } from './distributions.js';
import type { Interval } from './intervals.js';
import { quantileSorted } from './quantiles.js';

export type BootstrapMethod = 'bca' | 'percentile';

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

export const DEFAULT_RESAMPLES = 10_000;

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
