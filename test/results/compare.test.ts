import { describe as suite, expect, it } from 'vitest';
import { classifyMetric, compareExperiments, compareRunSets, compareSamples, DEFAULT_TOLERANCES } from '../../src/results/compare.js';
import { run } from './helpers.js';

/** Deterministic small noise around 1 (±0.5 %). */
const noise = [1.0, 1.004, 0.996, 1.002, 0.998, 1.003, 0.997, 1.001, 0.999, 1.0];

suite('metric classes', () => {
  it('maps names by pattern', () => {
    const cases: [string, string | null][] = [
      ['energy_gpu_j', 'gpu_energy'],
      ['energy_gpu_adjusted_j', 'gpu_energy'],
      ['energy_prefill_j', 'gpu_energy'],
      ['energy_decode_j', 'gpu_energy'],
      ['energy_total_j', 'total_energy'],
      ['j_per_output_token', 'total_energy'],
      ['j_per_request', 'total_energy'],
      ['tokens_per_s', 'throughput'],
      ['output_tokens_per_s', 'throughput'],
      ['ops_per_s', 'throughput'],
      ['latency_p50_s', 'latency'],
      ['ttft_p99_s', 'latency'],
      ['itl_mean_s', 'latency'],
      ['energy_cpu_j', null],
      ['output_tokens', null],
      ['gpu_temp_end_c', null],
    ];
    for (const [m, c] of cases) expect(classifyMetric(m), m).toBe(c);
    expect(DEFAULT_TOLERANCES).toEqual({ gpu_energy: 0.05, total_energy: 0.05, throughput: 0.1, latency: 0.1 });
  });
});

suite('compareSamples', () => {
  const a = noise.map((k) => 100 * k);
  it('ratio, difference and their CIs', () => {
    const b = noise.map((k) => 102 * k);
    const c = compareSamples('energy_gpu_j', a, b, { seed: 1 });
    expect(c.a.mean).toBeCloseTo(100, 9);
    expect(c.b.mean).toBeCloseTo(102, 9);
    expect(c.ratio).toBeCloseTo(1.02, 9);
    expect(c.difference).toBeCloseTo(2, 9);
    expect(c.relativeChange).toBeCloseTo(0.02, 9);
    expect(c.ratioCi?.low).toBeLessThan(1.02);
    expect(c.ratioCi?.high).toBeGreaterThan(1.02);
    expect(c.differenceCi?.low).toBeGreaterThan(1);
    expect(c.differenceCi?.high).toBeLessThan(3);
  });
  it('verdict within ±5 % for GPU energy when the whole CI is inside', () => {
    const c = compareSamples('energy_gpu_j', a, noise.map((k) => 102 * k), { seed: 1 });
    expect(c.verdict).toMatchObject({ class: 'gpu_energy', tolerance: 0.05, status: 'within', basis: 'ci', better: 'lower', change: 'worse' });
    expect(c.verdict?.text).toMatch(/^\+2\.0 % \(95 % CI \+\d\.\d % … \+\d\.\d %\): within ±5 %$/);
  });
  it('outside when the whole CI is beyond the tolerance', () => {
    const c = compareSamples('energy_gpu_j', a, noise.map((k) => 80 * k), { seed: 1 });
    expect(c.verdict?.status).toBe('outside');
    expect(c.verdict?.change).toBe('better');
    expect(c.verdict?.text).toMatch(/^-20\.0 %.*outside ±5 %$/);
  });
  it('inconclusive when the CI straddles the tolerance', () => {
    const wide = [0.8, 1.2, 0.9, 1.1, 1.0];
    const c = compareSamples('energy_total_j', wide.map((k) => 100 * k), wide.map((k) => 104 * k), { seed: 1 });
    expect(c.verdict?.status).toBe('inconclusive');
  });
  it('throughput: ±10 %, higher is better', () => {
    const c = compareSamples('tokens_per_s', a, noise.map((k) => 108 * k), { seed: 1 });
    expect(c.verdict).toMatchObject({ class: 'throughput', tolerance: 0.1, status: 'within', better: 'higher', change: 'better' });
    const d = compareSamples('tokens_per_s', a, noise.map((k) => 125 * k), { seed: 1 });
    expect(d.verdict?.status).toBe('outside');
  });
  it('latency: ±10 %', () => {
    const c = compareSamples('latency_p50_s', a, noise.map((k) => 95 * k), { seed: 1 });
    expect(c.verdict).toMatchObject({ class: 'latency', tolerance: 0.1, status: 'within', change: 'better' });
  });
  it('tolerances can be overridden', () => {
    const c = compareSamples('energy_gpu_j', a, noise.map((k) => 102 * k), { seed: 1, tolerances: { gpu_energy: 0.01 } });
    expect(c.verdict?.status).toBe('outside');
    expect(c.verdict?.text).toMatch(/outside ±1 %$/);
  });
  it('metrics outside the classes get no verdict', () => {
    expect(compareSamples('energy_cpu_j', a, a, { seed: 1 }).verdict).toBeNull();
  });
  it('single values: point-estimate verdict, no CI', () => {
    const c = compareSamples('energy_gpu_j', [100], [103], { seed: 1 });
    expect(c.ratioCi).toBeNull();
    expect(c.verdict).toMatchObject({ status: 'within', basis: 'point' });
    expect(compareSamples('energy_gpu_j', [100], [110], { seed: 1 }).verdict?.status).toBe('outside');
  });
  it('zero or empty baselines give no ratio', () => {
    const z = compareSamples('energy_gpu_j', [0, 0], [1, 2], { seed: 1 });
    expect(z.ratio).toBeNull();
    expect(z.verdict).toBeNull();
    expect(z.difference).toBe(1.5);
    const e = compareSamples('energy_gpu_j', [], [1, 2], { seed: 1 });
    expect(e.difference).toBeNull();
  });
  it('the difference CI agrees with a Welch interval for near-normal data', () => {
    // 10 vs 10 values; Welch se = √(s²a/10 + s²b/10); 95 % half-width ≈ t(≈18) · se = 2.10 · se
    const b = noise.map((k, i) => 103 * (noise[(i + 3) % 10] as number) * k);
    const c = compareSamples('tokens_per_s', a, b, { seed: 2, resamples: 20_000 });
    const va = (c.a.std ?? 0) ** 2;
    const vb = (c.b.std ?? 0) ** 2;
    const se = Math.sqrt(va / 10 + vb / 10);
    const width = (c.differenceCi?.high ?? 0) - (c.differenceCi?.low ?? 0);
    // the bootstrap is narrower than Welch by about √((n−1)/n) and by using z instead of t
    expect(width).toBeGreaterThan(2 * 1.6 * se);
    expect(width).toBeLessThan(2 * 2.2 * se);
  });
});

suite('compareRunSets / compareExperiments', () => {
  const runs = [
    ...noise.slice(0, 5).map((k, i) => run(`a${i}`, 'A', i + 1, { energy_gpu_j: 100 * k, tokens_per_s: 50 * k, only_a: 1 })),
    ...noise.slice(0, 5).map((k, i) => run(`b${i}`, 'B', i + 1, { energy_gpu_j: 130 * k, tokens_per_s: 51 * k })),
    run('bf', 'B', 6, { energy_gpu_j: 1e6, tokens_per_s: 1 }, { status: 'failed' }),
    run('bx', 'B', 7, { energy_gpu_j: 1e6, tokens_per_s: 1 }, { flags: ['counter_reset'] }),
  ];
  it('compares experiments over succeeded runs, metrics present in both', () => {
    const c = compareExperiments(runs, 'A', 'B', { seed: 1, includeFlagged: false });
    expect(c.labels).toEqual({ a: 'A', b: 'B' });
    expect(c.metrics.map((m) => m.metric)).toEqual(['energy_gpu_j', 'tokens_per_s']);
    expect(c.counts.b).toMatchObject({ total: 7, failed: 1, flaggedExcluded: 1, used: 5 });
    const e = c.metrics[0];
    expect(e?.b.n).toBe(5);
    expect(e?.ratio).toBeCloseTo(1.3, 9);
    expect(e?.verdict?.status).toBe('outside');
    expect(c.metrics[1]?.verdict?.status).toBe('within');
  });
  it('flagged runs count by default', () => {
    const c = compareRunSets(
      runs.filter((r) => r.experimentId === 'A'),
      runs.filter((r) => r.experimentId === 'B'),
      { seed: 1 },
    );
    expect(c.metrics[0]?.b.n).toBe(6);
    expect(c.labels).toEqual({ a: 'A', b: 'B' });
  });
});
