/** The pure parts of result import: what a file is (sniff), glob expansion, and OB repetitions. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { expandGlob } from '../../src/results/import/paths.js';
import { obRepetitions, readObReport } from '../../src/results/import/optimum.js';
import { sniffJson, sniffText } from '../../src/results/import/sniff.js';
import { readAebCsv } from '../../src/results/import/aeb.js';
import { tempDir } from '../helpers/cli.js';

describe('sniff', () => {
  it('tells results from configs and unknown shapes', () => {
    expect(sniffJson({ prefill: { energy: { unit: 'kWh', gpu: 1 } } })).toMatchObject({ ok: true, kind: 'optimum-benchmark' });
    expect(sniffJson({ schema_version: '2.0', total_energy_j: 1 })).toMatchObject({ ok: true, kind: 'llem-v2' });
    expect(sniffJson({ units: 'Wh', total: 1.2 })).toMatchObject({ ok: true, kind: 'aies-summary' });
    expect(sniffJson({ backend: { name: 'pytorch' }, scenario: {}, launcher: {} })).toMatchObject({ ok: false, looksLike: expect.stringMatching(/benchmark config/) });
    expect(sniffJson([1, 2])).toMatchObject({ ok: false, looksLike: 'a JSON list of 2 item(s)' });
    expect(sniffText('x/GPU_ENERGY_WH.txt', '12.50\n')).toMatchObject({ ok: true, kind: 'aies-wh' });
    expect(sniffText('x/notes.txt', 'hello')).toMatchObject({ ok: false });
    expect(sniffText('x/a.json', '')).toMatchObject({ ok: false, looksLike: 'an empty file' });
  });

  it("refuses lem's own CSV export as an ai_energy_benchmarks CSV", () => {
    expect(readAebCsv('run_id,experiment_id,energy_gpu_j\nc:0,e,1\n')).toMatchObject({ ok: false, looksLike: expect.stringMatching(/lem's own CSV export/) });
  });
});

describe('glob expansion', () => {
  it('expands *, ? and ** to existing files, sorted', () => {
    const d = tempDir();
    for (const p of ['a/x/benchmark_report.json', 'a/y/benchmark_report.json', 'b/benchmark_report.json', 'a/x/other.json']) {
      mkdirSync(join(d, p, '..'), { recursive: true });
      writeFileSync(join(d, p), '{}');
    }
    expect(expandGlob(join(d, 'a', '*', 'benchmark_report.json'))).toEqual([join(d, 'a/x/benchmark_report.json'), join(d, 'a/y/benchmark_report.json')]);
    expect(expandGlob(join(d, '**', 'benchmark_report.json'))).toEqual([join(d, 'a/x/benchmark_report.json'), join(d, 'a/y/benchmark_report.json'), join(d, 'b/benchmark_report.json')]);
    expect(expandGlob(join(d, 'a', 'x', 'o?her.json'))).toEqual([join(d, 'a/x/other.json')]);
    expect(expandGlob(join(d, 'c', '*.json'))).toEqual([]);
  });
});

describe('optimum-benchmark repetitions', () => {
  const lat = (values: number[]) => ({ unit: 's', values, count: values.length, mean: values.reduce((a, b) => a + b, 0) / values.length });
  it('n equal latency lists → n runs; throughput follows each repetition; energy without measures stays on run 1', () => {
    const report = {
      prefill: { latency: lat([1, 2]), throughput: { unit: 'tokens/s', value: 30 }, energy: { unit: 'Wh', gpu: 2, cpu: null, ram: null, total: 2 } },
      decode: { latency: lat([4, 6]), throughput: null, energy: null },
    };
    expect(obRepetitions(report)).toEqual({ n: 2, note: null });
    const r = readObReport(report, 'x');
    expect(r.runs.map((x) => x.metrics.ttft_mean_s)).toEqual([1, 2]);
    // volume = 30 tokens/s × 1.5 s mean = 45 tokens; over 1 s and 2 s
    expect(r.runs.map((x) => x.metrics.prefill_tokens_per_s)).toEqual([45, 22.5]);
    expect(r.runs.map((x) => x.metrics.energy_gpu_prefill_j)).toEqual([7200, null]);
    expect(r.runs[1]?.unmeasured.energy_gpu_prefill_j).toMatch(/once over all 2 repetitions/);
  });

  it('lists of different lengths → one run and a note', () => {
    const report = { prefill: { latency: lat([1, 2, 3]) }, decode: { latency: lat([4, 6]) } };
    expect(obRepetitions(report).n).toBe(1);
    expect(readObReport(report, 'x').warnings.join()).toMatch(/different numbers of latency values/);
  });
});
