import { describe as suite, expect, it } from 'vitest';
import {
  BOOTSTRAP_MIN_N,
  describe,
  fewCyclesNote,
  fiellerRatioInterval,
  headlineInterval,
  tInterval,
  welchDifferenceInterval,
} from '../../src/results/stats.js';
import { compareSamples } from '../../src/results/compare.js';
import { belowZeroNote } from '../../src/results/summary.js';
import { renderSummary } from '../../src/cli/commands/campaign.js';

suite('interval policy in describe()', () => {
  const xs = (n: number): number[] => Array.from({ length: n }, (_, i) => 100 + ((i * 37) % 11) - 5);

  it('the headline interval is the t interval at every n, and says so', () => {
    for (const n of [2, 3, 5, 10, 30, 31]) {
      const d = describe(xs(n), { seed: 1 });
      expect(d?.ci_method).toBe('t');
      expect(d?.ci95).toEqual(tInterval(xs(n)));
      expect(d?.ci95).toEqual(headlineInterval(xs(n)));
    }
    expect(describe([5], { seed: 1 })?.ci95).toBeNull();
  });

  it('an interval reaching below 0 for all-positive values is kept as computed and named in a note; one above 0, or over negative values, is not', () => {
    // Three positive values with a spread like the quickstart's flops_per_s under CPU contention (CV ~ 90 %).
    const wide = describe([1e9, 5e9, 1e10], { seed: 1 });
    const narrow = describe([100, 101, 102], { seed: 1 });
    const signed = describe([-3, 1, 4], { seed: 1 });
    expect(wide?.ci95?.low).toBeLessThan(0);
    expect(wide?.ci95).toEqual(tInterval([1e9, 5e9, 1e10]));
    const note = belowZeroNote([
      { metric: 'flops_per_s', d: wide },
      { metric: 'duration_s', d: narrow },
      { metric: 'delta_j', d: signed },
      { metric: 'energy_total_j', d: null },
    ]);
    expect(note).toContain('flops_per_s');
    expect(note).toMatch(/n = 3/);
    expect(note).toMatch(/\[0, high\]/);
    expect(note).toContain(`CV up to ${((wide?.cv ?? 0) * 100).toFixed(0)} %`);
    for (const m of ['duration_s', 'delta_j', 'energy_total_j']) expect(note).not.toContain(m);
    expect(belowZeroNote([{ metric: 'duration_s', d: narrow }, { metric: 'delta_j', d: signed }])).toBeNull();
  });

  it('the end-of-campaign summary prints that note under its table', () => {
    const row = (metric: string, values: number[]) => ({ experimentId: 'e1', name: 'e1', gpuModel: null, pooledGpuModels: [], metric, runs: values.length, stats: describe(values, { seed: 1 }), reason: null });
    const out = renderSummary([row('flops_per_s', [1e9, 5e9, 1e10]), row('duration_s', [1, 1.01, 1.02])]);
    expect(out).toMatch(/note: the interval of flops_per_s reaches below 0/);
    expect(renderSummary([row('duration_s', [1, 1.01, 1.02])])).not.toMatch(/reaches below 0/);
  });

  it('the bootstrap interval appears from 30 values on, or when asked for, never otherwise', () => {
    expect(BOOTSTRAP_MIN_N).toBe(30);
    expect(describe(xs(29), { seed: 1 })?.ci95_bootstrap).toBeNull();
    expect(describe(xs(30), { seed: 1 })?.ci95_bootstrap).not.toBeNull();
    expect(describe(xs(3), { seed: 1, bootstrap: 'always' })?.ci95_bootstrap).not.toBeNull();
    expect(describe(xs(40), { seed: 1, bootstrap: 'never' })?.ci95_bootstrap).toBeNull();
  });

  it('the few-cycles note is attached below 5 values and says what the interval cannot show', () => {
    for (const n of [2, 3, 4]) {
      const note = describe(xs(n), { seed: 1 })?.ci_note ?? '';
      expect(note).toContain(`n = ${n}`);
      expect(note).toMatch(/wide/);
      expect(note).toMatch(/normal/);
      expect(note).toMatch(/drift/);
    }
    expect(describe(xs(5), { seed: 1 })?.ci_note).toBeNull();
    expect(describe([1], { seed: 1 })?.ci_note).toMatch(/no interval/);
    // The note quotes the t quantile: 12.71 at n = 2, 4.30 at n = 3 (t table, 0.975).
    expect(fewCyclesNote(2)).toContain('12.71');
    expect(fewCyclesNote(3)).toContain('4.30');
  });
});

suite('Welch difference interval', () => {
  it('equal n and variances: df = 2(n − 1), as the pooled t (hand computation)', () => {
    // a = 1,2,3; b = 4,5,6: diff 3, var of each mean 1/3, se = √(2/3) = 0.816497, df = 4,
    // t(0.975, 4) = 2.776445 → 3 ± 2.266958.
    const ci = welchDifferenceInterval([1, 2, 3], [4, 5, 6]);
    expect(ci?.low).toBeCloseTo(0.733042, 5);
    expect(ci?.high).toBeCloseTo(5.266958, 5);
  });
  it('needs 2 values a side; no spread gives a zero-width interval', () => {
    expect(welchDifferenceInterval([1], [2, 3])).toBeNull();
    expect(welchDifferenceInterval([2, 2], [3, 3])).toEqual({ low: 1, high: 1 });
  });
});

suite('Fieller ratio interval', () => {
  it('with a constant A it is the t interval of B divided by mean(A) (hand computation)', () => {
    // b = 4,5,6: 5 ± t(0.975, 2) × √(1/3) = 5 ± 4.302653 × 0.577350 = 5 ± 2.484138; ÷ 2.
    const f = fiellerRatioInterval([2, 2, 2], [4, 5, 6]);
    expect(f.unbounded).toBe(false);
    expect(f.interval?.low).toBeCloseTo(1.257931, 5);
    expect(f.interval?.high).toBeCloseTo(3.742069, 5);
  });
  it('is asymmetric around the ratio and contains it', () => {
    const f = fiellerRatioInterval([10, 11, 9, 10.5], [12, 12.5, 11.6, 12.2]);
    const r = 12.075 / 10.125;
    expect(f.interval?.low).toBeLessThan(r);
    expect(f.interval?.high).toBeGreaterThan(r);
    expect(Math.abs((f.interval?.high ?? 0) - r - (r - (f.interval?.low ?? 0)))).toBeGreaterThan(1e-6);
  });
  it('is unbounded when mean(A) is not clearly away from 0, and compare then says inconclusive', () => {
    const a = [1, 100];
    const b = [50, 51];
    expect(fiellerRatioInterval(a, b)).toEqual({ interval: null, unbounded: true });
    const c = compareSamples('energy_gpu_j', a, b);
    expect(c.ratioUnbounded).toBe(true);
    expect(c.verdict).toMatchObject({ status: 'inconclusive', basis: 'ci' });
    expect(c.verdict?.text).toMatch(/unbounded/);
  });
});

suite('compare names its intervals', () => {
  it('Welch t and Fieller by default, bootstrap only when asked or from 30 values a side', () => {
    const a = [100, 101, 99, 100.5, 99.5];
    const b = a.map((x) => x * 1.02);
    const c = compareSamples('energy_gpu_j', a, b);
    expect(c.ci_method).toEqual({ difference: 'welch_t', ratio: 'fieller' });
    expect(c.ratioCi).toEqual(fiellerRatioInterval(a, b).interval);
    expect(c.differenceCi).toEqual(welchDifferenceInterval(a, b));
    expect(c.bootstrap).toBeNull();
    expect(c.ci_note).toBeNull();
    const asked = compareSamples('energy_gpu_j', a, b, { method: 'percentile' });
    expect(asked.bootstrap?.method).toBe('percentile');
    expect(asked.bootstrap?.ratioCi).not.toBeNull();
    // The verdict still rests on Fieller, not on the bootstrap.
    expect(asked.verdict).toEqual(c.verdict);
    expect(compareSamples('energy_gpu_j', a.slice(0, 3), b.slice(0, 3)).ci_note).toMatch(/few cycles \(n = 3\)/);
  });
  it('at n = 3 the Fieller interval is wider than the bootstrap one (which under-covers there), so verdicts are more cautious', () => {
    const c = compareSamples('energy_gpu_j', [99, 100, 101], [101.0, 102.0, 103.1], { seed: 1 });
    expect(c.verdict?.status).toBe('within');
    const noisy = compareSamples('energy_gpu_j', [97, 100, 103], [99, 102, 105.1], { seed: 1, method: 'bca' });
    expect(noisy.verdict?.status).toBe('inconclusive');
    const width = (i: { low: number; high: number } | null | undefined): number => (i ? i.high - i.low : Number.NaN);
    expect(width(noisy.ratioCi)).toBeGreaterThan(1.5 * width(noisy.bootstrap?.ratioCi));
  });
});
