/**
 * lem's exports read back by the other tools' own logic (re-implemented from their public source in
 * test/fixtures/compat/, see the headers there): AI Energy Score's summariser gets prefill + decode GPU
 * energy, counted once; optimum-benchmark's reader and report formatter accept every block (no nulls
 * inside a block); GPU_ENERGY_SUMMARY.json is byte-identical to what the summariser writes.
 */
import { join } from 'node:path';
import { describe as suite, expect, it } from 'vitest';
import { aiEnergyScoreFilesForRun, aiEnergyScoreFilesForRuns, pyFloatRepr } from '../../src/results/compat/ai-energy-score.js';
import { readOptimumBenchmarkReport } from '../../src/results/compat/import.js';
import { toOptimumBenchmarkExport, toOptimumBenchmarkReport } from '../../src/results/compat/optimum-benchmark.js';
import { readAndFormat } from '../fixtures/compat/ob-report-reader.js';
import { summarizeAutoDiscover, summarizeDesign } from '../fixtures/compat/summarize-gpu-wh.js';
import { toUnifiedRun } from '../../src/results/export.js';
import { FIXTURES, fixtureJson, run } from './helpers.js';

const plain = (x: unknown): Record<string, unknown> => JSON.parse(JSON.stringify(x)) as Record<string, unknown>;

// The case: prefill 50.12 Wh + decode 144.51 Wh = 194.63 Wh per pass (a `run` phase made it 389.26).
const lemRun = run('r', 'e', 1, {
  energy_gpu_j: 10 * 194.63 * 3600,
  energy_prefill_j: 50.12 * 3600,
  energy_decode_j: 144.51 * 3600,
  repetitions: 10,
  requests: 1000,
  input_tokens: 50_000,
  output_tokens: 100_000,
  prefill_time_s: 4,
  window_s: 200,
  output_tokens_per_s: 500,
  latency_p50_s: 1.5,
  ttft_p50_s: 0.05,
  ttft_mean_s: 0.06,
});

suite('AI Energy Score summariser on lem files', () => {
  it("counts lem's optimum-benchmark export once: prefill + decode GPU energy, with either published summariser", () => {
    const report = plain(toOptimumBenchmarkReport(lemRun));
    expect(Object.keys(report)).toEqual(['prefill', 'decode']);
    expect(summarizeDesign(report).total).toBe(194.63);
    expect(summarizeAutoDiscover(report)).toBe(194.63);
  });

  it("lem's GPU_ENERGY files are byte-identical to what the summariser writes from lem's report", () => {
    const mine = aiEnergyScoreFilesForRun(lemRun);
    const theirs = summarizeDesign(plain(toOptimumBenchmarkReport(lemRun)));
    expect(mine?.['GPU_ENERGY_WH.txt']).toBe(theirs.txt);
    expect(mine?.['GPU_ENERGY_SUMMARY.json']).toBe(theirs.json);
    expect(Object.keys(JSON.parse(theirs.json) as object)).toEqual(['units', 'total', 'format', 'preprocess_wh', 'prefill_wh', 'decode_wh']);
    expect(theirs.txt).toBe('194.63\n');
  });

  it('without a phase split the files follow the ai_energy_benchmarks path of the summariser', () => {
    const r = run('w', 'e', 1, { energy_gpu_j: 36_000 * 1.2345, repetitions: 10 });
    const mine = aiEnergyScoreFilesForRun(r);
    const theirs = summarizeDesign({ energy: { gpu_energy_wh: 1.2345 } });
    expect(mine?.['GPU_ENERGY_SUMMARY.json']).toBe(theirs.json);
    expect(mine?.['GPU_ENERGY_WH.txt']).toBe(theirs.txt);
  });

  it('averages over runs, then rounds as the summariser does', () => {
    const runs = [run('a', 'e', 1, { energy_prefill_j: 3600, energy_decode_j: 7200 }), run('b', 'e', 2, { energy_prefill_j: 7200, energy_decode_j: 14400 })];
    const files = aiEnergyScoreFilesForRuns(runs);
    expect(JSON.parse(files?.['GPU_ENERGY_SUMMARY.json'] ?? '{}')).toEqual({ units: 'Wh', total: 4.5, format: 'optimum', preprocess_wh: 0, prefill_wh: 1.5, decode_wh: 3 });
  });

  it("writes floats as Python's repr", () => {
    expect([0, 1, 0.1, 194.63, 1e-5, 1.5e16, 123456789012345.6, -2].map(pyFloatRepr)).toEqual(['0.0', '1.0', '0.1', '194.63', '1e-05', '1.5e+16', '123456789012345.6', '-2.0']);
  });
});

suite("optimum-benchmark's reader on lem's benchmark_report.json", () => {
  it('formats every block of a lem run without a None (energy domains not measured are 0.0 and listed)', () => {
    const ex = toOptimumBenchmarkExport(lemRun);
    const text = readAndFormat(plain(ex.report));
    expect(text).toContain('+ prefill:');
    expect(ex.unmeasured_energy_domains).toEqual({ prefill: ['cpu', 'ram'], decode: ['cpu', 'ram'] });
    // gpu of prefill read back: 50.12 Wh = 0.05012 kWh
    expect(text).toMatch(/\+ prefill:[\s\S]*?\+ gpu: 0\.050120 \(kWh\)/);
  });

  it('reports prefill throughput in samples/s and efficiency in samples/kWh, decode in tokens', () => {
    const rep = toOptimumBenchmarkReport(lemRun);
    // 1000 requests / 10 passes = 100 samples per pass, over a 4 s prefill pass
    expect(rep.prefill?.throughput).toEqual({ unit: 'samples/s', value: 25 });
    expect(rep.prefill?.efficiency?.unit).toBe('samples/kWh');
    expect(rep.prefill?.efficiency?.value).toBeCloseTo(100 / 0.05012, 6);
    // decode volume per pass: (100000 − 1000) / 10 = 9900 tokens, over 200/10 − 4 = 16 s
    expect(rep.decode?.throughput).toEqual({ unit: 'tokens/s', value: 9900 / 16 });
    expect(rep.decode?.efficiency?.unit).toBe('tokens/kWh');
  });

  it('the old report shape with null fields inside blocks is what breaks the formatter (the fixture catches it)', () => {
    expect(() => readAndFormat({ run: { memory: null, latency: null, throughput: null, energy: { unit: 'kWh', cpu: null, ram: null, gpu: 1, total: null }, efficiency: null } })).toThrow(/NoneType/);
    expect(() => readAndFormat({ run: { latency: { unit: 's', values: [], count: null, total: null, mean: 1, p50: 1, p90: null, p95: null, p99: 1, stdev: null, stdev_: null } } })).toThrow(/NoneType/);
  });

  it('re-exporting an imported optimum-benchmark report keeps its phases, efficiencies and latency, and the summariser agrees', async () => {
    const original = (fixtureJson('ob_benchmark.json') as { report: Record<string, unknown> }).report;
    const imported = await readOptimumBenchmarkReport(join(FIXTURES, 'ob_benchmark.json'), { runId: 'ob-1', experimentId: 'ob' });
    const r = imported.runs[0];
    if (!r) throw new Error('no run');
    const again = plain(toOptimumBenchmarkReport(r));
    expect(Object.keys(again)).toEqual(['preprocess', 'prefill', 'decode']);
    readAndFormat(again);
    const o = original as Record<string, { efficiency: unknown; energy: Record<string, number> }>;
    const a = again as Record<string, { efficiency: unknown; energy: Record<string, number>; latency: Record<string, number> | null }>;
    for (const p of ['preprocess', 'prefill', 'decode']) {
      expect(a[p]?.efficiency, p).toEqual(o[p]?.efficiency);
      for (const d of ['cpu', 'ram', 'gpu', 'total']) expect(a[p]?.energy[d], `${p}.${d}`).toBeCloseTo(o[p]?.energy[d] as number, 15);
    }
    expect(a.decode?.latency?.mean).toBeCloseTo(2, 12); // 2000 ms, in s
    expect(summarizeDesign(again).json).toBe(summarizeDesign(original).json);
    expect(aiEnergyScoreFilesForRun(r)?.['GPU_ENERGY_SUMMARY.json']).toBe(summarizeDesign(original).json);
  });
});

suite('unified export of imported data', () => {
  it('keeps every phase (Wh) and the efficiencies the report had', async () => {
    const original = (fixtureJson('ob_benchmark.json') as { report: Record<string, { energy: Record<string, number> | null; efficiency: { unit: string; value: number } | null }> }).report;
    const imported = await readOptimumBenchmarkReport(join(FIXTURES, 'ob_benchmark.json'), { runId: 'ob-1', experimentId: 'ob' });
    const r = imported.runs[0];
    if (!r) throw new Error('no run');
    const u = toUnifiedRun(r, imported.experiments[0]);
    for (const [phase, ph] of Object.entries(original)) {
      if (!ph.energy) continue;
      expect(u.energy.phases[phase]?.gpu_wh, phase).toBeCloseTo((ph.energy.gpu as number) * 1000, 12);
      expect(u.energy.phases[phase]?.total_wh, phase).toBeCloseTo((ph.energy.total as number) * 1000, 12);
      if (ph.efficiency) {
        const what = ph.efficiency.unit.split('/')[0] as string;
        expect(u.performance.efficiency[`${phase}_${what}_per_kwh`], phase).toBe(ph.efficiency.value);
      }
    }
  });
});
