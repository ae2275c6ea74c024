/**
 * Data quantiles and Tukey outliers (reported, never dropped). Quantiles use linear interpolation
 * between order statistics (NumPy's default, R type 7). Re-exported by stats.ts.
 */

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
