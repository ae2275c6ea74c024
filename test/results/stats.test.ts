import { describe as suite, expect, it } from 'vitest';
import { mulberry32 } from './helpers.js';
import {
  bootstrapMeanCi,
  bootstrapMeansStatistic,
  describe,
  normalCdf,
  normalQuantile,
  quantileSorted,
  regularizedIncompleteBeta,
  studentTCdf,
  studentTQuantile,
  tInterval,
  tukeyOutliers,
} from '../../src/results/stats.js';

// ---------------------------------------------------------------------------------------------
// Independent helpers for references (deliberately different algorithms from the module).
// ---------------------------------------------------------------------------------------------

/** Abramowitz & Stegun 7.1.26 erf (|error| < 1.5e-7): independent of the module's incomplete gamma. */
function erfAS(x: number): number {
  const s = Math.sign(x);
  const ax = Math.abs(x);
  const t = 1 / (1 + 0.3275911 * ax);
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-ax * ax);
  return s * y;
}
const phiRef = (z: number): number => 0.5 * (1 + erfAS(z / Math.SQRT2));
/** Inverse by bisection on the A&S CDF. */
function phiInvRef(p: number): number {
  let lo = -40;
  let hi = 40;
  for (let i = 0; i < 200; i++) {
    const mid = (lo + hi) / 2;
    if (phiRef(mid) < p) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}
/** Linear-interpolation quantile, written out independently (NumPy 'linear'). */
function pct(sorted: number[], p: number): number {
  const h = (sorted.length - 1) * p;
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return (sorted[lo] as number) + (h - lo) * ((sorted[hi] as number) - (sorted[lo] as number));
}
function hasNaN(v: unknown): boolean {
  if (typeof v === 'number') return Number.isNaN(v);
  if (Array.isArray(v)) return v.some(hasNaN);
  if (v && typeof v === 'object') return Object.values(v).some(hasNaN);
  return false;
}

// ---------------------------------------------------------------------------------------------

suite('Student t distribution', () => {
  it('matches published two-sided 95 % table values', () => {
    // Standard t table, 0.975 quantile.
    expect(studentTQuantile(0.975, 1)).toBeCloseTo(12.706, 3);
    expect(studentTQuantile(0.975, 4)).toBeCloseTo(2.776, 3);
    expect(studentTQuantile(0.975, 10)).toBeCloseTo(2.228, 3);
    expect(studentTQuantile(0.975, 30)).toBeCloseTo(2.042, 3);
    expect(studentTQuantile(0.975, 120)).toBeCloseTo(1.98, 3);
  });
  it('matches other published quantiles', () => {
    expect(studentTQuantile(0.95, 5)).toBeCloseTo(2.015, 3);
    expect(studentTQuantile(0.995, 20)).toBeCloseTo(2.845, 3);
    expect(studentTQuantile(0.9995, 3)).toBeCloseTo(12.924, 3);
    expect(studentTQuantile(0.9, 60)).toBeCloseTo(1.296, 3);
  });
  it('matches closed forms for df = 1 and df = 2 to ~1e-10', () => {
    for (const p of [0.6, 0.9, 0.975, 0.995, 0.9999, 0.01]) {
      // df=1 is Cauchy: t = tan(π(p − ½)).
      expect(studentTQuantile(p, 1)).toBeCloseTo(Math.tan(Math.PI * (p - 0.5)), 8);
      // df=2: t = (2p − 1) / sqrt(2p(1 − p)).
      expect(studentTQuantile(p, 2)).toBeCloseTo((2 * p - 1) / Math.sqrt(2 * p * (1 - p)), 9);
    }
    for (const t of [-5, -1, 0, 0.3, 2, 40]) {
      expect(studentTCdf(t, 1)).toBeCloseTo(0.5 + Math.atan(t) / Math.PI, 12);
      expect(studentTCdf(t, 2)).toBeCloseTo(0.5 + t / (2 * Math.sqrt(2 + t * t)), 12);
    }
  });
  it('is a true inverse of the CDF for real (non-integer) df, and tends to the normal', () => {
    for (const df of [0.5, 1.5, 2.7, 7.25, 55.5, 1e4]) {
      for (const p of [0.001, 0.2, 0.5, 0.8, 0.975, 0.999999]) {
        const t = studentTQuantile(p, df);
        expect(studentTCdf(t, df)).toBeCloseTo(p, 10);
      }
    }
    expect(studentTQuantile(0.975, 1e9)).toBeCloseTo(1.959964, 6);
    expect(studentTQuantile(0.975, 1e5)).toBeCloseTo(1.959988, 5);
  });
  it('incomplete beta matches closed forms', () => {
    // I_x(1, b) = 1 − (1 − x)^b ; I_x(a, 1) = x^a
    expect(regularizedIncompleteBeta(0.3, 1, 4)).toBeCloseTo(1 - 0.7 ** 4, 14);
    expect(regularizedIncompleteBeta(0.3, 2.5, 1)).toBeCloseTo(0.3 ** 2.5, 14);
    // I_{1/2}(a, a) = 1/2
    expect(regularizedIncompleteBeta(0.5, 7.3, 7.3)).toBeCloseTo(0.5, 14);
  });
});

suite('normal distribution', () => {
  it('matches known values', () => {
    expect(normalQuantile(0.975)).toBeCloseTo(1.959963984540054, 12);
    expect(normalQuantile(0.95)).toBeCloseTo(1.6448536269514722, 12);
    expect(normalQuantile(0.5)).toBe(0);
    expect(normalQuantile(1e-10)).toBeCloseTo(-6.361340902404056, 9);
    expect(normalCdf(1)).toBeCloseTo(0.8413447460685429, 14);
    expect(normalCdf(-3)).toBeCloseTo(0.0013498980316301, 15);
    expect(normalCdf(normalQuantile(0.123))).toBeCloseTo(0.123, 14);
  });
});

suite('t interval', () => {
  it('matches a hand computation', () => {
    // x = 10, 12, 14, 16, 18: mean 14, s² = (16+4+0+4+16)/4 = 10, s = 3.16228, se = s/√5 = √2 = 1.41421
    // t(0.975, 4) = 2.776445; half-width = 2.776445 × 1.414214 = 3.926486 → [10.073514, 17.926486]
    const ci = tInterval([10, 12, 14, 16, 18]);
    expect(ci).not.toBeNull();
    expect(ci?.low).toBeCloseTo(10.073514, 5);
    expect(ci?.high).toBeCloseTo(17.926486, 5);
    const d = describe([10, 12, 14, 16, 18], { seed: 1 });
    expect(d?.ci95_t?.low).toBeCloseTo(10.073514, 5);
    expect(d?.std).toBeCloseTo(Math.sqrt(10), 12);
    expect(d?.cv).toBeCloseTo(Math.sqrt(10) / 14, 12);
  });
});

suite('quantiles and Tukey outliers', () => {
  it('uses linear interpolation', () => {
    expect(quantileSorted([1, 2, 3, 4], 0.5)).toBe(2.5);
    expect(quantileSorted([1, 2, 3, 4], 0.25)).toBe(1.75);
  });
  it('reports mild and extreme outliers with their indices and never drops them', () => {
    // sorted: 10 11 12 13 14 15 16 17 30 60 → q1 = 12.25, q3 = 16.75, IQR = 4.5
    // mild fences 5.5 / 23.5, extreme fences −1.25 / 30.25 → 30 is mild, 60 is extreme
    const values = [13, 60, 10, 11, 30, 12, 14, 15, 16, 17];
    const o = tukeyOutliers(values);
    expect(o.q1).toBeCloseTo(12.25, 12);
    expect(o.q3).toBeCloseTo(16.75, 12);
    expect(o.fences.mildHigh).toBeCloseTo(23.5, 12);
    expect(o.fences.extremeHigh).toBeCloseTo(30.25, 12);
    expect(o.mild).toEqual([{ index: 4, value: 30, side: 'high' }]);
    expect(o.extreme).toEqual([{ index: 1, value: 60, side: 'high' }]);
    const d = describe(values, { seed: 's' });
    expect(d?.n).toBe(10);
    expect(d?.max).toBe(60);
    expect(d?.mean).toBeCloseTo(19.8, 12);
    expect(d?.outliers.extreme.map((p) => p.index)).toEqual([1]);
  });
  it('detects low outliers', () => {
    const o = tukeyOutliers([-50, 10, 11, 12, 13, 14]);
    expect(o.extreme.map((p) => p.side)).toEqual(['low']);
  });
});

suite('degenerate samples', () => {
  it('n = 1: no spread, null intervals, no NaN', () => {
    const d = describe([3.5], { seed: 1, bootstrap: 'always' });
    expect(d).not.toBeNull();
    expect(d?.std).toBeNull();
    expect(d?.cv).toBeNull();
    expect(d?.ci95_t).toBeNull();
    expect(d?.ci95_bootstrap).toBeNull();
    expect(hasNaN(d)).toBe(false);
  });
  it('all-equal values: null bootstrap, zero std, no NaN', () => {
    const d = describe([2, 2, 2, 2], { seed: 1, bootstrap: 'always' });
    expect(d?.std).toBe(0);
    expect(d?.ci95_bootstrap).toBeNull();
    expect(d?.ci95_t).toEqual({ low: 2, high: 2 });
    expect(hasNaN(d)).toBe(false);
    expect(bootstrapMeanCi([2, 2], { seed: 1 })).toBeNull();
    expect(bootstrapMeanCi([2, 2], { seed: 1, method: 'percentile' })).toBeNull();
  });
  it('empty and non-finite inputs', () => {
    expect(describe([], { seed: 1 })).toBeNull();
    expect(describe([Number.NaN, Infinity], { seed: 1 })).toBeNull();
    const d = describe([1, Number.NaN, 3], { seed: 1 });
    expect(d?.n).toBe(2);
    expect(hasNaN(d)).toBe(false);
  });
  it('a statistic that is not finite gives null', () => {
    expect(bootstrapMeansStatistic([[0, 0, 0], [1, 2, 3]], (m) => (m[1] as number) / (m[0] as number), { seed: 1 })).toBeNull();
  });
});

suite('bootstrap intervals against an exact bootstrap distribution', () => {
  // Small right-skewed sample (like J/token over a few cycles). With n = 6 the bootstrap
  // distribution of the mean can be enumerated exactly: all 6^6 = 46 656 equally likely resamples.
  const sample = [1.2, 1.5, 1.9, 2.4, 3.8, 7.1];
  const n = sample.length;
  const est = sample.reduce((a, b) => a + b, 0) / n;
  const exact: number[] = [];
  const idx = new Array<number>(n).fill(0);
  for (;;) {
    let s = 0;
    for (const i of idx) s += sample[i] as number;
    exact.push(s / n);
    let p = 0;
    while (p < n && (idx[p] = ((idx[p] as number) + 1) % n) === 0) p++;
    if (p === n) break;
  }
  exact.sort((a, b) => a - b);
  const N = exact.length;
  const below = exact.filter((v) => v < est - 1e-12).length;
  const ties = exact.filter((v) => Math.abs(v - est) <= 1e-12).length;
  const z0Exact = phiInvRef((below + 0.5 * ties) / N);
  // Acceleration for the mean in closed form: a = Σd³ / (6 (Σd²)^{3/2}), d = x − x̄.
  const dev = sample.map((x) => x - est);
  const aExact = dev.reduce((s, d) => s + d ** 3, 0) / (6 * dev.reduce((s, d) => s + d ** 2, 0) ** 1.5);
  const zl = phiInvRef(0.025);
  const zh = phiInvRef(0.975);
  const a1 = phiRef(z0Exact + (z0Exact + zl) / (1 - aExact * (z0Exact + zl)));
  const a2 = phiRef(z0Exact + (z0Exact + zh) / (1 - aExact * (z0Exact + zh)));
  const bcaExact = { low: pct(exact, a1), high: pct(exact, a2) };
  const percExact = { low: pct(exact, 0.025), high: pct(exact, 0.975) };
  /** Monte Carlo standard error of the p-quantile estimate from B resamples, from the exact distribution. */
  const quantileSe = (p: number, B: number): number => {
    const d = 0.01;
    const slope = (pct(exact, Math.min(1, p + d)) - pct(exact, Math.max(0, p - d))) / (2 * d);
    return slope * Math.sqrt((p * (1 - p)) / B);
  };

  it('the reference is sensible (right-skewed data: BCa shifted right of percentile)', () => {
    expect(aExact).toBeGreaterThan(0);
    expect(bcaExact.low).toBeGreaterThan(percExact.low);
    expect(bcaExact.high).toBeGreaterThan(percExact.high);
  });

  it('BCa with the default 10 000 resamples agrees within Monte Carlo tolerance', () => {
    const B = 10_000;
    for (const seed of [1, 'two', 3]) {
      const r = bootstrapMeanCi(sample, { seed });
      expect(r).not.toBeNull();
      if (!r) return;
      expect(r.method).toBe('bca');
      expect(r.resamples).toBe(B);
      expect(r.acceleration).toBeCloseTo(aExact, 12);
      expect(Math.abs((r.z0 as number) - z0Exact)).toBeLessThan(4 * Math.sqrt(0.25 / B) / 0.39);
      expect(Math.abs(r.interval.low - bcaExact.low)).toBeLessThan(4 * quantileSe(a1, B) + 0.01);
      expect(Math.abs(r.interval.high - bcaExact.high)).toBeLessThan(4 * quantileSe(a2, B) + 0.01);
    }
  });

  it('BCa with many resamples converges to the exact value', () => {
    const r = bootstrapMeanCi(sample, { seed: 99, resamples: 400_000 });
    expect(r?.interval.low).toBeCloseTo(bcaExact.low, 1);
    expect(Math.abs((r?.interval.low ?? 0) - bcaExact.low)).toBeLessThan(4 * quantileSe(a1, 400_000) + 0.003);
    expect(Math.abs((r?.interval.high ?? 0) - bcaExact.high)).toBeLessThan(4 * quantileSe(a2, 400_000) + 0.003);
  });

  it('agrees with SciPy', () => {
    // Computed offline with SciPy 1.17.1 (not run by this test):
    //   scipy.stats.bootstrap((x,), np.mean, method='BCa', n_resamples=1_000_000, random_state=1..3)
    //   → [1.8333, 5.4500] for all three seeds; method='percentile' → [1.6333, 4.7500].
    // The bootstrap distribution is discrete (atoms 1/60 apart near the tails), hence the tolerance.
    // The upper BCa level is ≈ 0.995, where the distribution is sparse: use as many resamples as SciPy did.
    const bca = bootstrapMeanCi(sample, { seed: 11, resamples: 1_000_000 });
    expect(Math.abs((bca?.interval.low ?? 0) - 1.8333)).toBeLessThan(0.02);
    expect(Math.abs((bca?.interval.high ?? 0) - 5.45)).toBeLessThan(0.02);
    const perc = bootstrapMeanCi(sample, { seed: 11, resamples: 1_000_000, method: 'percentile' });
    expect(Math.abs((perc?.interval.low ?? 0) - 1.6333)).toBeLessThan(0.02);
    expect(Math.abs((perc?.interval.high ?? 0) - 4.75)).toBeLessThan(0.02);
  });

  it('percentile method agrees with the exact percentile interval', () => {
    const r = bootstrapMeanCi(sample, { seed: 5, method: 'percentile' });
    expect(r?.z0).toBeNull();
    expect(Math.abs((r?.interval.low ?? 0) - percExact.low)).toBeLessThan(4 * quantileSe(0.025, 10_000) + 0.01);
    expect(Math.abs((r?.interval.high ?? 0) - percExact.high)).toBeLessThan(4 * quantileSe(0.975, 10_000) + 0.01);
  });

  it('describe() uses BCa by default and percentile on request', () => {
    const d = describe(sample, { seed: 7, bootstrap: 'always' });
    expect(d?.ci95_bootstrap_method).toBe('bca');
    expect(d?.bootstrap?.acceleration).toBeCloseTo(aExact, 12);
    const p = describe(sample, { seed: 7, method: 'percentile', bootstrap: 'always' });
    expect(p?.ci95_bootstrap_method).toBe('percentile');
    expect(p?.ci95_bootstrap?.low).toBeLessThan(d?.ci95_bootstrap?.low ?? 0);
  });

  it('is reproducible from the seed and changes with it', () => {
    const a = bootstrapMeanCi(sample, { seed: 'x' });
    const b = bootstrapMeanCi(sample, { seed: 'x' });
    const c = bootstrapMeanCi(sample, { seed: 'y' });
    expect(a).toEqual(b);
    expect(a?.interval).not.toEqual(c?.interval);
  });
});

suite('bootstrap against an independent straightforward BCa implementation', () => {
  it('n = 20 lognormal sample: agreement within Monte Carlo tolerance', () => {
    const rnd = mulberry32(12345);
    const sample: number[] = [];
    for (let i = 0; i < 20; i++) {
      // Box–Muller lognormal.
      const u1 = rnd() || 1e-12;
      const u2 = rnd();
      sample.push(Math.exp(0.8 * Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2)));
    }
    const n = sample.length;
    const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
    const theta = mean(sample);
    // Reference: plain BCa textbook implementation (Efron & Tibshirani §14.3) with mulberry32 and 200 000 resamples.
    const B = 200_000;
    const rr = mulberry32(777);
    const boot: number[] = [];
    for (let b = 0; b < B; b++) {
      let s = 0;
      for (let i = 0; i < n; i++) s += sample[Math.floor(rr() * n)] as number;
      boot.push(s / n);
    }
    boot.sort((a, b) => a - b);
    const z0 = phiInvRef(boot.filter((v) => v < theta).length / B);
    const jack = sample.map((_, i) => mean(sample.filter((__, j) => j !== i)));
    const jm = mean(jack);
    const acc = jack.reduce((s, t) => s + (jm - t) ** 3, 0) / (6 * jack.reduce((s, t) => s + (jm - t) ** 2, 0) ** 1.5);
    const lvl = (z: number): number => phiRef(z0 + (z0 + z) / (1 - acc * (z0 + z)));
    const ref = { low: pct(boot, lvl(phiInvRef(0.025))), high: pct(boot, lvl(phiInvRef(0.975))) };

    const sd = Math.sqrt(sample.reduce((s, x) => s + (x - theta) ** 2, 0) / (n - 1));
    const se = sd / Math.sqrt(n);
    const r = bootstrapMeanCi(sample, { seed: 2024, resamples: 20_000 });
    expect(r).not.toBeNull();
    expect(r?.acceleration).toBeCloseTo(acc, 10);
    // Endpoint MC error at B = 20 000 for tail quantiles is ≈ 0.03 se; allow 0.15 se.
    expect(Math.abs((r?.interval.low ?? 0) - ref.low)).toBeLessThan(0.15 * se);
    expect(Math.abs((r?.interval.high ?? 0) - ref.high)).toBeLessThan(0.15 * se);
  });

  it('two-sample difference and ratio of means', () => {
    const a = [10.1, 10.4, 9.8, 10.0, 10.3, 10.2];
    const b = [11.0, 11.3, 10.9, 11.6, 11.1, 11.2];
    const diff = bootstrapMeansStatistic([a, b], (m) => (m[1] as number) - (m[0] as number), { seed: 3 });
    const ratio = bootstrapMeansStatistic([a, b], (m) => (m[1] as number) / (m[0] as number), { seed: 3 });
    const ma = a.reduce((s, x) => s + x, 0) / a.length;
    const mb = b.reduce((s, x) => s + x, 0) / b.length;
    expect(diff?.estimate).toBeCloseTo(mb - ma, 12);
    expect(ratio?.estimate).toBeCloseTo(mb / ma, 12);
    expect(diff?.interval.low).toBeGreaterThan(0.7);
    expect(diff?.interval.high).toBeLessThan(1.4);
    expect(diff?.interval.low).toBeLessThan(mb - ma);
    expect(ratio?.interval.low).toBeGreaterThan(1);
    // SciPy 1.17.1, offline: stats.bootstrap((a, b), mean(b) − mean(a) | mean(b)/mean(a), method='BCa',
    // n_resamples=400_000) → difference [0.8500, 1.3333], ratio [1.08143, 1.13145].
    const d2 = bootstrapMeansStatistic([a, b], (m) => (m[1] as number) - (m[0] as number), { seed: 4, resamples: 100_000 });
    const r2 = bootstrapMeansStatistic([a, b], (m) => (m[1] as number) / (m[0] as number), { seed: 4, resamples: 100_000 });
    expect(Math.abs((d2?.interval.low ?? 0) - 0.85)).toBeLessThan(0.02);
    expect(Math.abs((d2?.interval.high ?? 0) - 1.3333)).toBeLessThan(0.02);
    expect(Math.abs((r2?.interval.low ?? 0) - 1.08143)).toBeLessThan(0.002);
    expect(Math.abs((r2?.interval.high ?? 0) - 1.13145)).toBeLessThan(0.002);
    // The t-based Welch interval is a rough cross-check for a near-normal difference.
    const va = a.reduce((s, x) => s + (x - ma) ** 2, 0) / 5;
    const vb = b.reduce((s, x) => s + (x - mb) ** 2, 0) / 5;
    const se = Math.sqrt(va / 6 + vb / 6);
    expect(Math.abs((diff?.interval.high ?? 0) - (diff?.interval.low ?? 0) - 2 * 1.96 * se)).toBeLessThan(0.6 * se);
  });
});
