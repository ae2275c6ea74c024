import { describe as suite, expect, it } from 'vitest';
import { aggregate, type ExperimentRecord, type RunRecord } from '../../src/results/aggregate.js';
import {
  AGGREGATE_CSV_LEADING_COLUMNS,
  AGGREGATE_STAT_COLUMNS,
  aggregationToCsv,
  aggregationToJson,
  aggregationToLongCsv,
  csvField,
  runsToCsv,
  runsToJson,
  toUnifiedResults,
  toUnifiedRun,
} from '../../src/results/export.js';
import { parseCsv } from '../../src/results/compat/import.js';
import { expectClose, fixture, fixtureJson, run } from './helpers.js';

const experiments: ExperimentRecord[] = [
  { id: 'e1', name: 'llama, "fp16"', backend: 'vllm', config: { batch: 8 } },
  { id: 'e2', name: 'plain', backend: 'pytorch', config: { batch: 1 } },
];

const resultV1 = {
  schema_version: 1,
  run_id: 'r5',
  experiment_id: 'e2',
  cycle: 3,
  attempt: 1,
  backend: 'pytorch',
  started_at: '2025-01-01T00:00:00Z',
  ended_at: '2025-01-01T00:01:00Z',
  metrics: { energy_prefill_j: 360, energy_decode_j: 1440, output_tokens: 1000, j_per_output_token: 1.8, energy_cpu_j: null },
  unmeasured: { energy_cpu_j: 'no RAPL in this VM' },
  energy: {
    gpu: { joules: 1800, source: 'nvml_total_energy', reason: null },
    cpu: { joules: null, source: null, reason: 'no RAPL in this VM' },
    dram: { joules: null, source: null, reason: 'no RAPL in this VM' },
  },
  environment: { gpu: 'NVIDIA H100 80GB HBM3' },
  notes: [],
};

// Deliberately out of order: exports sort by cycle, experiment, run id.
const runs: RunRecord[] = [
  run('r4', 'e2', 2, { tokens_per_s: 55, energy_gpu_j: null, latency_p50_s: 0.5 }),
  run('r2', 'e2', 1, { tokens_per_s: 50, energy_gpu_j: 3600 }),
  run('r1', 'e1', 1, { tokens_per_s: 120.5, energy_gpu_j: 7200, latency_p50_s: 0.25 }, { flags: ['thermal', 'power_cap'], resultPath: 'state/r1/result.json' }),
  run('r3', 'e1', 2, {}, { status: 'failed' }),
  run('r5', 'e2', 3, { ...resultV1.metrics }, { resultPath: 'state/r5/result.json', result: resultV1 }),
];

suite('CSV', () => {
  it('quotes fields per RFC 4180', () => {
    expect(csvField('plain')).toBe('plain');
    expect(csvField('a,b')).toBe('"a,b"');
    expect(csvField('say "hi"')).toBe('"say ""hi"""');
    expect(csvField('two\nlines')).toBe('"two\nlines"');
    expect(csvField(' padded')).toBe('" padded"');
    expect(csvField(null)).toBe('');
    expect(csvField(Number.NaN)).toBe('');
    expect(csvField(0.1)).toBe('0.1');
  });

  it('per-run CSV matches the hand-written expected file', () => {
    expect(runsToCsv(runs, experiments)).toBe(fixture('runs.expected.csv'));
  });

  it('per-run CSV round-trips through a CSV parser', () => {
    const rows = parseCsv(runsToCsv(runs, experiments));
    expect(rows[1]?.[2]).toBe('llama, "fp16"');
    expect(rows.every((r) => r.length === rows[0]?.length)).toBe(true);
  });

  it('per-experiment CSV: documented columns and hand-computed statistics', () => {
    const agg = aggregate(runs, experiments, { seed: 1, method: 'bca', metrics: ['tokens_per_s', 'energy_gpu_j'] });
    const rows = parseCsv(aggregationToCsv(agg));
    const header = rows[0] as string[];
    expect(header.slice(0, 13)).toEqual([
      'experiment_id',
      'experiment_name',
      'backend',
      'gpu_model',
      'gpu_models_pooled',
      'runs_total',
      'runs_succeeded',
      'runs_failed',
      'runs_missing',
      'runs_flagged',
      'runs_flagged_excluded',
      'runs_used',
      'cycles_missing',
    ]);
    expect(header.slice(13, 32)).toEqual([
      'energy_gpu_j__n',
      'energy_gpu_j__nulls',
      'energy_gpu_j__mean',
      'energy_gpu_j__median',
      'energy_gpu_j__std',
      'energy_gpu_j__cv',
      'energy_gpu_j__min',
      'energy_gpu_j__max',
      'energy_gpu_j__ci95_low',
      'energy_gpu_j__ci95_high',
      'energy_gpu_j__ci_method',
      'energy_gpu_j__few_cycles',
      'energy_gpu_j__ci95_t_low',
      'energy_gpu_j__ci95_t_high',
      'energy_gpu_j__ci95_boot_low',
      'energy_gpu_j__ci95_boot_high',
      'energy_gpu_j__ci95_boot_method',
      'energy_gpu_j__outliers_mild',
      'energy_gpu_j__outliers_extreme',
    ]);
    expect(header[32]).toBe('tokens_per_s__n');
    expect(header.length).toBe(AGGREGATE_CSV_LEADING_COLUMNS.length + 2 * AGGREGATE_STAT_COLUMNS.length);
    const byId = new Map(rows.slice(1).map((r) => [r[0], Object.fromEntries(header.map((h, i) => [h, r[i] as string]))]));
    const e1 = byId.get('e1') as Record<string, string>;
    expect(e1.experiment_name).toBe('llama, "fp16"');
    expect([e1.runs_total, e1.runs_succeeded, e1.runs_failed, e1.runs_flagged, e1.runs_used, e1.cycles_missing]).toEqual(['2', '1', '1', '1', '1', '2;3']);
    const e2 = byId.get('e2') as Record<string, string>;
    // e2 tokens_per_s = {50, 55} (r5 has none → 1 null): mean 52.5, s = √12.5 = 3.5355339, CV = 0.0673435
    // t CI: 52.5 ± 12.7062047 × 3.5355339/√2 = 52.5 ± 31.7655 → [20.7345, 84.2655]
    // Bootstrap of n = 2: means 50 (¼), 52.5 (½), 55 (¼); z0 = Φ⁻¹(¼ + ½·½) = 0, a = 0 → levels 2.5 %/97.5 % → [50, 55]
    expect(e2.tokens_per_s__n).toBe('2');
    expect(e2.tokens_per_s__nulls).toBe('1');
    expect(Number(e2.tokens_per_s__mean)).toBe(52.5);
    expect(Number(e2.tokens_per_s__median)).toBe(52.5);
    expect(Number(e2.tokens_per_s__std)).toBeCloseTo(3.5355339, 6);
    expect(Number(e2.tokens_per_s__cv)).toBeCloseTo(0.0673435, 6);
    expect(Number(e2.tokens_per_s__ci95_t_low)).toBeCloseTo(20.7345, 3);
    expect(Number(e2.tokens_per_s__ci95_t_high)).toBeCloseTo(84.2655, 3);
    // The headline interval is the t interval, named, with the few-cycles mark (n = 2 < 5).
    expect(Number(e2.tokens_per_s__ci95_low)).toBeCloseTo(20.7345, 3);
    expect(Number(e2.tokens_per_s__ci95_high)).toBeCloseTo(84.2655, 3);
    expect(e2.tokens_per_s__ci_method).toBe('t');
    expect(e2.tokens_per_s__few_cycles).toBe('true');
    // The bootstrap was asked for (method given), so it is there at n = 2, named.
    expect(Number(e2.tokens_per_s__ci95_boot_low)).toBe(50);
    expect(Number(e2.tokens_per_s__ci95_boot_high)).toBe(55);
    expect(e2.tokens_per_s__ci95_boot_method).toBe('bca');
    // Without asking, the bootstrap is left out below 30 values (its coverage does not hold there).
    const plain = parseCsv(aggregationToCsv(aggregate(runs, experiments, { seed: 1, metrics: ['tokens_per_s'] })));
    const ph = plain[0] as string[];
    const pe2 = Object.fromEntries(ph.map((h, i) => [h, (plain.find((r) => r[0] === 'e2') as string[])[i] as string]));
    expect([pe2.tokens_per_s__ci95_boot_low, pe2.tokens_per_s__ci95_boot_method, pe2.tokens_per_s__ci_method]).toEqual(['', '', 't']);
    expect(Number(pe2.tokens_per_s__ci95_low)).toBeCloseTo(20.7345, 3);
    // e2 energy_gpu_j: one value (3600), two nulls → no spread, empty cells.
    expect([e2.energy_gpu_j__n, e2.energy_gpu_j__nulls, e2.energy_gpu_j__mean, e2.energy_gpu_j__std, e2.energy_gpu_j__ci95_t_low]).toEqual(['1', '2', '3600', '', '']);
  });

  it('per-cycle and long CSVs', () => {
    const agg = aggregate(runs, experiments, { seed: 1, metrics: ['tokens_per_s'] });
    const cyc = parseCsv(aggregationToCsv(agg, 'cycle'));
    expect(cyc[0]?.slice(0, 9)).toEqual(['cycle', 'runs_total', 'runs_succeeded', 'runs_failed', 'runs_missing', 'runs_flagged', 'runs_flagged_excluded', 'runs_used', 'experiments_missing']);
    expect(cyc.slice(1).map((r) => [r[0], r[8]])).toEqual([
      ['1', ''],
      ['2', 'e1'],
      ['3', 'e1'],
    ]);
    // A cycle row has its n and mean but no interval columns (its values are different experiments).
    const head = cyc[0] ?? [];
    const col = (name: string): number => head.indexOf(`tokens_per_s__${name}`);
    const two = cyc.find((r) => r[0] === '1') ?? [];
    expect(two[col('n')]).toBe('2');
    expect(two[col('mean')]).not.toBe('');
    for (const c of ['ci95_low', 'ci95_high', 'ci_method', 'few_cycles', 'ci95_t_low', 'ci95_t_high']) expect(two[col(c)], c).toBe('');
    const long = parseCsv(aggregationToLongCsv(agg));
    expect(long[0]?.slice(0, 8)).toEqual(['experiment_id', 'experiment_name', 'backend', 'gpu_model', 'gpu_models_pooled', 'metric', 'n', 'nulls']);
    expect(long.slice(1).map((r) => [r[0], r[5], r[6]])).toEqual([
      ['e1', 'tokens_per_s', '1'],
      ['e2', 'tokens_per_s', '2'],
    ]);
  });
});

suite('JSON', () => {
  it('runs JSON is sorted and complete', () => {
    const j = runsToJson(runs, experiments);
    expect(j.format).toBe('lem.runs/v1');
    expect(j.runs.map((r) => r.run_id)).toEqual(['r1', 'r2', 'r3', 'r4', 'r5']);
    expect(Object.keys(j.runs[3]?.metrics ?? {})).toEqual(['energy_gpu_j', 'latency_p50_s', 'tokens_per_s']);
    expect(JSON.parse(JSON.stringify(j))).toEqual(j);
  });
  it('aggregation JSON survives serialisation', () => {
    const agg = aggregate(runs, experiments, { seed: 1 });
    const j = aggregationToJson(agg);
    expect(j.format).toBe('lem.aggregate/v1');
    expect(JSON.parse(JSON.stringify(j))).toEqual(j);
  });
});

suite('unified result format', () => {
  it('matches the hand-written expected objects', () => {
    const picked = toUnifiedResults(runs, experiments).filter((u) => u.run_id === 'r1' || u.run_id === 'r5');
    expectClose(JSON.parse(JSON.stringify(picked)), fixtureJson('unified.expected.json'));
  });
  it('converts all four energy domains to Wh', () => {
    const u = toUnifiedRun(run('x', 'e', 1, { energy_gpu_j: 3600, energy_cpu_j: 1800, energy_dram_j: 360, energy_total_j: 5760 }), undefined);
    expect(u.energy).toMatchObject({ gpu_wh: 1, cpu_wh: 0.5, ram_wh: 0.1, total_wh: 1.6 });
    expect(u.config).toEqual({ experiment_name: null, backend: null, parameters: null });
  });
  it('separates raw, adjusted and per-phase energies', () => {
    const u = toUnifiedRun(
      run('x', 'e', 1, {
        energy_gpu_j: 7200,
        energy_gpu_raw_j: 7200,
        energy_gpu_adjusted_j: 3600,
        energy_total_adjusted_j: null,
        energy_cpu_decode_j: 36,
        energy_prefill_j: 720,
        output_tokens_per_s: 10,
        power_mean_w: 300,
      }),
      undefined,
    );
    expect(u.energy.gpu_wh).toBe(2);
    expect(u.energy.raw.gpu_wh).toBe(2);
    expect(u.energy.adjusted).toEqual({ gpu_wh: 1, cpu_wh: null, ram_wh: null, total_wh: null });
    expect(u.energy.phases).toEqual({
      decode: { gpu_wh: null, cpu_wh: 0.01, ram_wh: null, total_wh: null },
      prefill: { gpu_wh: 0.2, cpu_wh: null, ram_wh: null, total_wh: null },
    });
    expect(u.performance.throughput).toEqual({ output_tokens_per_s: 10 });
    expect(u.other_metrics).toEqual({ power_mean_w: 300 });
  });
});
