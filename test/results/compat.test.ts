import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe as suite, expect, it } from 'vitest';
import {
  aiEnergyScoreFilesForRun,
  aiEnergyScoreFilesForRuns,
  averageGpuEnergy,
  gpuEnergyWh,
  pythonFixed,
  writeAiEnergyScoreFiles,
} from '../../src/results/compat/ai-energy-score.js';
import { latencyFromValues, toOptimumBenchmarkReport } from '../../src/results/compat/optimum-benchmark.js';
import {
  importAiEnergyBenchmarksCsv,
  importOptimumBenchmarkReport,
  parseCsv,
  readAiEnergyBenchmarksCsv,
  readOptimumBenchmarkReport,
} from '../../src/results/compat/import.js';
import { FIXTURES, expectClose, fixture, fixtureJson, run } from './helpers.js';

suite('Python-compatible fixed formatting', () => {
  it('matches Python "%.2f" (values checked against CPython, exact ties round to even)', () => {
    const cases: [number, string][] = [
      [0.125, '0.12'], // exact binary tie → even
      [0.375, '0.38'], // exact binary tie → even (8)
      [2.675, '2.67'], // binary value is below the tie
      [1.005, '1.00'],
      [0.005, '0.01'], // binary value is above the tie
      [0.015, '0.01'],
      [133.71187, '133.71'],
      [-0.001, '-0.00'],
      [1e-9, '0.00'],
      [12345.675, '12345.67'],
      [5, '5.00'],
    ];
    for (const [x, s] of cases) expect(pythonFixed(x, 2), String(x)).toBe(s);
    expect([pythonFixed(0.5, 0), pythonFixed(1.5, 0), pythonFixed(2.5, 0)]).toEqual(['0', '2', '2']);
  });
});

suite('optimum-benchmark import', () => {
  it('maps a benchmark.json to lem metrics (hand-computed expectations)', async () => {
    const imported = await readOptimumBenchmarkReport(join(FIXTURES, 'ob_benchmark.json'), { runId: 'ob-1', experimentId: 'ob' });
    expect(imported.warnings).toEqual([]);
    expect(imported.runs).toHaveLength(1);
    const r = imported.runs[0];
    expect(r?.status).toBe('succeeded');
    expect(r?.flags).toEqual([]);
    expect(r?.resultPath).toBe(join(FIXTURES, 'ob_benchmark.json'));
    expectClose(r?.metrics, fixtureJson('ob_benchmark.expected-metrics.json'));
    expect(imported.experiments[0]?.backend).toBe('pytorch');
  });

  it('accepts a bare report, flags negative energies and rejects non-objects', () => {
    const rep = { decode: { memory: null, latency: null, throughput: null, energy: { unit: 'Wh', cpu: null, ram: null, gpu: -1, total: null }, efficiency: null } };
    const imported = importOptimumBenchmarkReport(rep, { runId: 'x', experimentId: 'y' });
    expect(imported.runs[0]?.metrics.energy_gpu_decode_j).toBe(-3600);
    expect(imported.runs[0]?.flags).toEqual(['negative_energy']);
    expect(() => importOptimumBenchmarkReport([1], { runId: 'x', experimentId: 'y' })).toThrow();
    const bad = importOptimumBenchmarkReport({ decode: { energy: { unit: 'furlongs', gpu: 1 } } }, { runId: 'x', experimentId: 'y' });
    expect(bad.warnings[0]).toMatch(/unknown energy unit/);
  });
});

suite('AI Energy Score outputs', () => {
  it('imported optimum-benchmark report → the hand-written GPU_ENERGY files', async () => {
    const imported = await readOptimumBenchmarkReport(join(FIXTURES, 'ob_benchmark.json'), { runId: 'ob-1', experimentId: 'ob' });
    const r = imported.runs[0];
    if (!r) throw new Error('no run');
    const files = aiEnergyScoreFilesForRun(r);
    expect(files?.['GPU_ENERGY_WH.txt']).toBe(fixture('aies/GPU_ENERGY_WH.txt'));
    expect(files?.['GPU_ENERGY_SUMMARY.json']).toBe(fixture('aies/GPU_ENERGY_SUMMARY.json'));
    // and written to disk
    const dir = await mkdtemp(join(tmpdir(), 'lem-aies-'));
    try {
      if (!files) throw new Error('no files');
      const paths = await writeAiEnergyScoreFiles(join(dir, 'out'), files);
      expect(paths.map((p) => p.slice(dir.length))).toEqual(['/out/GPU_ENERGY_WH.txt', '/out/GPU_ENERGY_SUMMARY.json']);
      expect(await readFile(join(dir, 'out', 'GPU_ENERGY_WH.txt'), 'utf8')).toBe('133.71\n');
      expect(JSON.parse(await readFile(join(dir, 'out', 'GPU_ENERGY_SUMMARY.json'), 'utf8'))).toEqual({
        units: 'Wh',
        total: 133.71,
        format: 'optimum',
        preprocess_wh: 0.16,
        prefill_wh: 72.01,
        decode_wh: 61.54,
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("uses lem's per-pass phase metrics, else the window energy per pass", () => {
    // prefill 720 J = 0.2 Wh, decode 2880 J = 0.8 Wh → 1.00 Wh
    const phases = aiEnergyScoreFilesForRun(run('a', 'e', 1, { energy_prefill_j: 720, energy_decode_j: 2880, energy_gpu_j: 36000, repetitions: 10 }));
    expect(phases?.['GPU_ENERGY_WH.txt']).toBe('1.00\n');
    expect(phases?.['GPU_ENERGY_SUMMARY.json']).toBe('{\n  "units": "Wh",\n  "total": 1.0,\n  "format": "optimum",\n  "preprocess_wh": 0.0,\n  "prefill_wh": 0.2,\n  "decode_wh": 0.8\n}');
    // no phases: 36000 J over 10 passes = 1 Wh per pass, all of it under decode (the ai_energy_benchmarks breakdown)
    const win = aiEnergyScoreFilesForRun(run('a', 'e', 1, { energy_gpu_j: 36000, repetitions: 10 }));
    expect(win?.['GPU_ENERGY_SUMMARY.json']).toBe('{\n  "units": "Wh",\n  "total": 1.0,\n  "format": "ai_energy_benchmarks",\n  "preprocess_wh": 0.0,\n  "prefill_wh": 0.0,\n  "decode_wh": 1.0\n}');
    expect(gpuEnergyWh({ energy_gpu_j: 7200 })?.totalWh).toBe(2);
  });

  it('unmeasured GPU energy produces nothing', () => {
    expect(aiEnergyScoreFilesForRun(run('a', 'e', 1, { energy_gpu_j: null }))).toBeNull();
    expect(aiEnergyScoreFilesForRun(run('a', 'e', 1, { energy_prefill_j: 1, energy_decode_j: null }))).toBeNull();
    expect(aiEnergyScoreFilesForRun(run('a', 'e', 1, { tokens_per_s: 1 }))).toBeNull();
  });

  it('aggregate = mean over succeeded runs with GPU energy', () => {
    const runs = [
      run('a', 'e', 1, { energy_prefill_j: 3600, energy_decode_j: 7200 }), // 1 + 2 Wh
      run('b', 'e', 2, { energy_prefill_j: 7200, energy_decode_j: 14400 }), // 2 + 4 Wh
      run('c', 'e', 3, { energy_prefill_j: null, energy_decode_j: null }),
      run('d', 'e', 4, { energy_prefill_j: 1e9, energy_decode_j: 1e9 }, { status: 'failed' }),
    ];
    const avg = averageGpuEnergy(runs);
    expect(avg).toMatchObject({ totalWh: 4.5, phasesWh: { prefill: 1.5, decode: 3 }, runsUsed: 2, runsSkipped: 1 });
    expect(aiEnergyScoreFilesForRuns(runs)?.['GPU_ENERGY_WH.txt']).toBe('4.50\n');
  });
});

suite('optimum-benchmark view of a lem run', () => {
  const lemRun = run('r', 'e', 1, {
    energy_gpu_j: 36000,
    energy_cpu_j: 3600,
    energy_dram_j: 1800,
    energy_total_j: 41400,
    energy_prefill_j: 720,
    energy_decode_j: 2880,
    energy_cpu_decode_j: null,
    repetitions: 10,
    input_tokens: 5000,
    output_tokens: 10000,
    prefill_time_s: 0.5,
    window_s: 100,
    output_tokens_per_s: 100,
    tokens_per_s: 150,
    latency_p50_s: 1.5,
    latency_mean_s: 1.6,
    latency_p99_s: 3.2,
    ttft_p50_s: 0.05,
    ttft_mean_s: 0.06,
    itl_mean_s: 0.02,
    itl_p50_s: 0.019,
    memory_max_global_vram_mb: 40000,
  });

  it('matches the hand-written benchmark_report.json', () => {
    expectClose(toOptimumBenchmarkReport(lemRun), fixtureJson('ob_export.expected.json'));
  });

  it('every phase has exactly memory/latency/throughput/energy/efficiency', () => {
    for (const ph of Object.values(toOptimumBenchmarkReport(lemRun))) {
      expect(Object.keys(ph).sort()).toEqual(['efficiency', 'energy', 'latency', 'memory', 'throughput']);
    }
    // nothing measured per phase: no phase at all (no whole-window phase is invented)
    expect(toOptimumBenchmarkReport(run('x', 'e', 1, {}))).toEqual({});
  });

  it('latency from raw values follows optimum-benchmark (linear percentiles, population stdev)', () => {
    // sorted 0.1 0.2 0.3 0.4: mean 0.25; p90 at h = 2.7 → 0.37; p95 → 0.385; p99 → 0.397
    // population variance = (2·0.15² + 2·0.05²)/4 = 0.0125 → stdev 0.1118034, stdev_ = 44.72136 %
    const l = latencyFromValues([0.4, 0.1, 0.3, 0.2]);
    expect(l.count).toBe(4);
    expect(l.total).toBeCloseTo(1, 12);
    expect(l.mean).toBeCloseTo(0.25, 12);
    expect(l.p50).toBeCloseTo(0.25, 12);
    expect(l.p90).toBeCloseTo(0.37, 12);
    expect(l.p95).toBeCloseTo(0.385, 12);
    expect(l.p99).toBeCloseTo(0.397, 12);
    expect(l.stdev).toBeCloseTo(0.1118034, 7);
    expect(l.stdev_).toBeCloseTo(44.72136, 5);
    const rep = toOptimumBenchmarkReport(lemRun, { latencyValues: { prefill: [0.4, 0.1, 0.3, 0.2] } });
    expect(rep.prefill?.latency?.values).toEqual([0.4, 0.1, 0.3, 0.2]);
  });

  it('round-trips lem → benchmark_report.json → lem (per-pass phase energies; whole = prefill + decode)', () => {
    const back = importOptimumBenchmarkReport(JSON.parse(JSON.stringify(toOptimumBenchmarkReport(lemRun))), { runId: 'r', experimentId: 'e' });
    const m = back.runs[0]?.metrics ?? {};
    for (const k of ['energy_prefill_j', 'energy_decode_j']) expect(m[k], k).toBeCloseTo(lemRun.metrics[k] as number, 6);
    expect(m.energy_gpu_j).toBeCloseTo(720 + 2880, 6);
    expect(m.decode_tokens_per_s).toBeCloseTo(1000 / 9.5, 9);
  });
});

suite('ai_energy_benchmarks CSV import', () => {
  it('parses RFC 4180 CSV', () => {
    expect(parseCsv('a,b\r\n"x, ""y""",2\n"multi\nline",\n')).toEqual([
      ['a', 'b'],
      ['x, "y"', '2'],
      ['multi\nline', ''],
    ]);
    expect(parseCsv('\uFEFFh\n1')).toEqual([['h'], ['1']]);
  });

  it('maps rows to runs with lem metric names (hand-computed expectations)', async () => {
    const imported = await readAiEnergyBenchmarksCsv(join(FIXTURES, 'aeb_results.csv'));
    const expected = fixtureJson('aeb_results.expected.json') as Record<string, unknown>;
    expectClose(imported.experiments, expected.experiments);
    expectClose(
      imported.runs.map((r) => ({ runId: r.runId, experimentId: r.experimentId, cycle: r.cycle, status: r.status, flags: r.flags, metrics: r.metrics })),
      expected.runs,
    );
    expect(imported.warnings).toEqual(expected.warnings);
    expect(imported.ignoredColumns).toEqual(expected.ignoredColumns);
    expect(imported.runs.every((r) => r.resultPath === join(FIXTURES, 'aeb_results.csv'))).toBe(true);
    const errRow = imported.runs[2]?.result as { unmeasured: Record<string, string> };
    expect(errRow.unmeasured.energy_gpu_j).toMatch(/codecarbon not installed/);
  });

  it('lists unknown columns and uses kWh when Wh is absent', () => {
    const r = importAiEnergyBenchmarksCsv('config_name,energy_gpu_energy_kwh,summary_mystery,timestamp\nx,0.002,3,t\n');
    expect(r.runs[0]?.metrics.energy_gpu_j).toBeCloseTo(7200, 9);
    expect(r.ignoredColumns).toEqual(['summary_mystery']);
  });
});
