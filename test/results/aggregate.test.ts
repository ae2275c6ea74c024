import { describe as suite, expect, it } from 'vitest';
import { aggregate, aggregateByCycle, aggregateByExperiment, collectMetricNames, CYCLE_NO_INTERVAL, splitByGpuModel, countRuns, type RunRecord } from '../../src/results/aggregate.js';
import { experiment, run } from './helpers.js';
import { summarize } from '../../src/results/summary.js';

// Campaign: 3 experiments × 4 cycles, with a flagged run, a failed and a pending run, a null metric,
// and an experiment (C) that never ran.
const experiments = [experiment('A', 'alpha'), experiment('B', 'beta', 'pytorch'), experiment('C', 'gamma')];
const runs: RunRecord[] = [
  run('a1', 'A', 1, { tokens_per_s: 100, energy_gpu_j: 10 }),
  run('a2', 'A', 2, { tokens_per_s: 140, energy_gpu_j: 30 }, { flags: ['thermal_throttle'] }),
  run('a3', 'A', 3, { tokens_per_s: 90, energy_gpu_j: 11 }),
  run('a4', 'A', 4, { tokens_per_s: 110, energy_gpu_j: null }),
  run('b1', 'B', 1, { tokens_per_s: 50, energy_gpu_j: 20, latency_p50_s: 0.4 }),
  run('b2', 'B', 2, { tokens_per_s: 52, energy_gpu_j: 21, latency_p50_s: 0.5 }),
  run('b3', 'B', 3, { tokens_per_s: 999 }, { status: 'failed' }),
  run('b4', 'B', 4, {}, { status: 'pending' }),
  run('x1', 'X', 1, { tokens_per_s: 7 }), // experiment not in the list: appended
];

suite('late aggregation per experiment', () => {
  it('counts runs by status and reports missing cycles', () => {
    const [a, b, c, x] = aggregateByExperiment(runs, experiments, { seed: 1 });
    expect([a?.experimentId, b?.experimentId, c?.experimentId, x?.experimentId]).toEqual(['A', 'B', 'C', 'X']);
    expect(a?.counts).toEqual({ total: 4, succeeded: 4, failed: 0, interrupted: 0, pending: 0, running: 0, missing: 0, flagged: 1, flaggedExcluded: 0, flaggedByGate: { thermal_throttle: 1 }, used: 4 });
    expect(b?.counts).toMatchObject({ total: 4, succeeded: 2, failed: 1, pending: 1, missing: 1, used: 2 });
    expect(b?.missingCycles).toEqual([3, 4]);
    expect(c?.counts.total).toBe(0);
    expect(c?.missingCycles).toEqual([1, 2, 3, 4]);
    expect(c?.metrics.tokens_per_s?.description).toBeNull();
    expect(x?.name).toBeNull();
    expect(a?.name).toBe('alpha');
    expect(b?.backend).toBe('pytorch');
  });

  it('computes every metric from succeeded runs only (hand-checked values)', () => {
    const [a, b] = aggregateByExperiment(runs, experiments, { seed: 1 });
    // A tokens_per_s: 100, 140, 90, 110 → mean 110, median 105
    expect(a?.metrics.tokens_per_s?.description?.mean).toBe(110);
    expect(a?.metrics.tokens_per_s?.description?.median).toBe(105);
    // A energy_gpu_j: 10, 30, 11 (a4 null) → n 3, 1 null, mean 17
    expect(a?.metrics.energy_gpu_j?.description?.n).toBe(3);
    expect(a?.metrics.energy_gpu_j?.nullCount).toBe(1);
    expect(a?.metrics.energy_gpu_j?.description?.mean).toBe(17);
    // B: the failed run's 999 must not count → mean(50, 52) = 51
    expect(b?.metrics.tokens_per_s?.description?.mean).toBe(51);
    expect(b?.metrics.tokens_per_s?.points.map((p) => p.runId)).toEqual(['b1', 'b2']);
    // latency only exists for B: A has it as 4 nulls, not as zeros
    expect(a?.metrics.latency_p50_s?.nullCount).toBe(4);
    expect(a?.metrics.latency_p50_s?.description).toBeNull();
    expect(collectMetricNames(runs)).toEqual(['energy_gpu_j', 'latency_p50_s', 'tokens_per_s']);
  });

  it('counts flagged runs per gate: a run with two gates under both, failed runs not at all', () => {
    const gated: RunRecord[] = [
      run('g1', 'A', 1, { tokens_per_s: 1 }, { flags: ['warmup_not_converged', 'baseline_unstable'] }),
      run('g2', 'A', 2, { tokens_per_s: 1 }, { flags: ['baseline_unstable'] }),
      run('g3', 'A', 3, { tokens_per_s: 1 }),
      run('g4', 'A', 4, { tokens_per_s: 1 }, { status: 'failed', flags: ['baseline_unstable'] }),
    ];
    const c = countRuns(gated, false);
    expect(c.flagged).toBe(2);
    expect(c.flaggedExcluded).toBe(2);
    expect(c.flaggedByGate).toEqual({ baseline_unstable: 2, warmup_not_converged: 1 });
    expect(Object.keys(c.flaggedByGate)).toEqual(['baseline_unstable', 'warmup_not_converged']);
    expect(countRuns(gated.slice(2), true).flaggedByGate).toEqual({});
  });

  it('includeFlagged=false excludes flagged runs and reports how many', () => {
    const [a] = aggregateByExperiment(runs, experiments, { seed: 1, includeFlagged: false });
    expect(a?.counts.flaggedExcluded).toBe(1);
    expect(a?.counts.used).toBe(3);
    // without a2: 100, 90, 110 → mean 100
    expect(a?.metrics.tokens_per_s?.description?.mean).toBe(100);
    expect(a?.metrics.tokens_per_s?.points.some((p) => p.runId === 'a2')).toBe(false);
    expect(a?.cycles).toEqual([1, 3, 4]);
    // the flagged run still counts as succeeded: cycle 2 is not "missing"
    expect(a?.missingCycles).toEqual([]);
    const kept = aggregateByExperiment(runs, experiments, { seed: 1 })[0];
    expect(kept?.metrics.tokens_per_s?.points.find((p) => p.runId === 'a2')?.flagged).toBe(true);
  });

  it('passes seed, resamples and method through to the intervals', () => {
    const base = aggregateByExperiment(runs, experiments, { seed: 's', method: 'bca' })[0]?.metrics.tokens_per_s?.description;
    const same = aggregateByExperiment(runs, experiments, { seed: 's', method: 'bca' })[0]?.metrics.tokens_per_s?.description;
    const other = aggregateByExperiment(runs, experiments, { seed: 't', method: 'bca' })[0]?.metrics.tokens_per_s?.description;
    // Not asked for: no bootstrap below 30 values; the headline t interval is there, named, with the few-cycles note.
    const auto = aggregateByExperiment(runs, experiments, { seed: 's' })[0]?.metrics.tokens_per_s?.description;
    expect(auto?.ci95_bootstrap).toBeNull();
    expect(auto?.ci_method).toBe('t');
    expect(auto?.ci95).toEqual(auto?.ci95_t);
    expect(auto?.ci_note).toMatch(/few cycles \(n = 4\)/);
    const perc = aggregateByExperiment(runs, experiments, { seed: 's', method: 'percentile', resamples: 500 })[0]?.metrics.tokens_per_s?.description;
    expect(same).toEqual(base);
    expect(other?.bootstrap?.z0).not.toBe(base?.bootstrap?.z0); // endpoints of n = 4 sit on discrete atoms; z0 is a Monte Carlo estimate
    expect(base?.bootstrap?.resamples).toBe(10_000);
    expect(perc?.ci95_bootstrap_method).toBe('percentile');
    expect(perc?.bootstrap?.resamples).toBe(500);
  });

  it("adding an experiment does not change another one's interval", () => {
    const before = aggregateByExperiment(runs, experiments, { seed: 9, bootstrap: 'always' })[0]?.metrics.tokens_per_s?.description?.ci95_bootstrap;
    expect(before).not.toBeNull();
    const more = [...runs, run('d1', 'D', 1, { tokens_per_s: 1 }), run('d2', 'D', 2, { tokens_per_s: 2 })];
    const after = aggregateByExperiment(more, [...experiments, experiment('D')], { seed: 9, bootstrap: 'always' })[0]?.metrics.tokens_per_s?.description?.ci95_bootstrap;
    expect(after).toEqual(before);
  });
});

suite('late aggregation per cycle', () => {
  it('groups across experiments and lists missing experiments', () => {
    const cycles = aggregateByCycle(runs, experiments, { seed: 1 });
    expect(cycles.map((c) => c.cycle)).toEqual([1, 2, 3, 4]);
    const c1 = cycles[0];
    // cycle 1: A 100, B 50, X 7
    expect(c1?.metrics.tokens_per_s?.description?.n).toBe(3);
    expect(c1?.metrics.tokens_per_s?.description?.mean).toBeCloseTo(157 / 3, 12);
    expect(c1?.experimentIds).toEqual(['A', 'B', 'X']);
    expect(c1?.missingExperimentIds).toEqual(['C']);
    const c3 = cycles[2];
    expect(c3?.counts.failed).toBe(1);
    expect(c3?.missingExperimentIds).toEqual(['B', 'C', 'X']);
    expect(c3?.metrics.tokens_per_s?.description?.mean).toBe(90);
  });

  it('gives no interval for a cycle: its values are different experiments, and the note says so', () => {
    const c1 = aggregateByCycle(runs, experiments, { seed: 1, method: 'percentile' })[0]?.metrics.tokens_per_s?.description;
    expect(c1?.n).toBe(3);
    expect(c1?.std).not.toBeNull();
    expect([c1?.ci95, c1?.ci95_t, c1?.ci95_bootstrap]).toEqual([null, null, null]);
    expect(c1?.ci_note).toBe(CYCLE_NO_INTERVAL);
    // The same values per experiment do get their interval.
    const a = aggregateByExperiment(runs, experiments, { seed: 1 }).find((e) => e.experimentId === 'A')?.metrics.tokens_per_s?.description;
    expect(a?.ci95).not.toBeNull();
  });
});

suite('aggregate()', () => {
  it('returns both views, totals and resolved options', () => {
    const agg = aggregate(runs, experiments, { seed: 3, includeFlagged: false });
    expect(agg.options).toEqual({ includeFlagged: false, seed: 3, resamples: 10_000, method: 'bca', bootstrap: 'auto', ci_method: 't', groupBy: 'gpu_model' });
    expect(aggregate(runs, experiments, { method: 'percentile' }).options).toMatchObject({ method: 'percentile', bootstrap: 'always' });
    expect(agg.totals).toEqual(countRuns(runs, false));
    expect(agg.totals).toMatchObject({ total: 9, succeeded: 7, failed: 1, pending: 1, missing: 1, flagged: 1, flaggedExcluded: 1, used: 6 });
    expect(agg.experiments).toHaveLength(4);
    expect(agg.cycles).toHaveLength(4);
    expect(agg.metricNames).toEqual(['energy_gpu_j', 'latency_p50_s', 'tokens_per_s']);
  });
  it('can be restricted to chosen metrics', () => {
    const agg = aggregate(runs, experiments, { metrics: ['tokens_per_s'] });
    expect(Object.keys(agg.experiments[0]?.metrics ?? {})).toEqual(['tokens_per_s']);
  });
  it('non-finite metric values count as nulls', () => {
    const agg = aggregate([run('n', 'A', 1, { x: Number.NaN }), run('m', 'A', 2, { x: 2 })], [], { metrics: ['x'] });
    expect(agg.experiments[0]?.metrics.x?.nullCount).toBe(1);
    expect(agg.experiments[0]?.metrics.x?.description?.n).toBe(1);
  });
});

suite('GPU models (fake model names)', () => {
  const mixed = [
    run('r1', 'e1', 1, { x: 1 }, { gpuModel: 'FAKE-A' }),
    run('r2', 'e1', 2, { x: 2 }, { gpuModel: 'FAKE-B' }),
    run('r3', 'e1', 3, { x: 3 }, { gpuModel: 'FAKE-A' }),
    run('r4', 'e1', 4, {}, { status: 'pending' }),
  ];
  it('splits by model, runs of unknown model apart; one known model keeps one group; none pools and names the models', () => {
    expect(splitByGpuModel(mixed, 'gpu_model').map((g) => [g.gpuModel, g.runs.map((r) => r.runId)])).toEqual([
      ['FAKE-A', ['r1', 'r3']],
      ['FAKE-B', ['r2']],
      [null, ['r4']],
    ]);
    expect(splitByGpuModel([mixed[0] as RunRecord, mixed[3] as RunRecord], 'gpu_model')).toMatchObject([{ gpuModel: 'FAKE-A', pooled: [] }]);
    expect(splitByGpuModel(mixed, 'none')).toMatchObject([{ gpuModel: null, pooled: ['FAKE-A', 'FAKE-B'] }]);
    const aggs = aggregateByExperiment(mixed, [], { groupBy: 'gpu_model' });
    expect(aggs.map((a) => [a.gpuModel, a.metrics['x']?.description?.n ?? 0, a.counts.total])).toEqual([
      ['FAKE-A', 2, 2],
      ['FAKE-B', 1, 1],
      [null, 0, 1],
    ]);
    // The first group keeps the experiment's seed key: a campaign on one model aggregates as before.
    const one = mixed.slice(0, 1).concat(mixed[2] as RunRecord);
    expect(aggregateByExperiment(one, [])[0]?.metrics['x']).toEqual(aggregateByExperiment(one.map((r) => ({ ...r, gpuModel: null })), [])[0]?.metrics['x']);
  });

  it('the end-of-campaign summary has one row per model, labelled; pooled rows name the models', () => {
    const exps = [{ id: 'e1', name: 'exp', backend: 'calibration', config: {} }];
    const cal = (i: number, model: string) => run(`r${i}`, 'e1', i, { flops_per_s: 10 * i }, { gpuModel: model });
    const runs = [cal(1, 'FAKE-A'), cal(2, 'FAKE-B'), cal(3, 'FAKE-A')];
    const rows = summarize(exps, runs, { seed: 1 }).filter((r) => r.metric === 'flops_per_s');
    expect(rows.map((r) => [r.name, r.stats?.n])).toEqual([
      ['exp @ FAKE-A', 2],
      ['exp @ FAKE-B', 1],
    ]);
    const pooled = summarize(exps, runs, { seed: 1, groupBy: 'none' }).filter((r) => r.metric === 'flops_per_s');
    expect(pooled.map((r) => [r.name, r.stats?.n, r.pooledGpuModels])).toEqual([['exp @ pooled across FAKE-A, FAKE-B', 3, ['FAKE-A', 'FAKE-B']]]);
  });
});
