/**
 * `lem results import` through the CLI, on fixtures written for lem from the documented formats of
 * optimum-benchmark, AI Energy Score, ai_energy_benchmarks and LLenergyMeasure v1/v2
 * (test/fixtures/import/). Real SQLite manifest in a temporary state directory.
 */
import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { lem, ROOT, tempDir } from '../helpers/cli.js';

const FIX = join(ROOT, 'test', 'fixtures', 'import');
const fx = (...p: string[]): string => join(FIX, ...p);

interface RunJson {
  run_id: string;
  experiment_id: string;
  cycle: number;
  status: string;
  flags: string[];
  metrics: Record<string, number | null>;
}
interface ShowJson {
  totals: { total: number; flagged: number };
  experiments: Array<{ experiment_id: string; name: string; counts: { total: number; used: number; flagged: number }; metrics: Record<string, { description: { n: number; mean: number | null; ci95: { low: number; high: number } | null } | null }> }>;
}
interface ImportJson {
  campaign: string | null;
  experiments: number;
  runs: number;
  flagged_runs: number;
  imported: Array<{ path: string; source_tool: string; source_version: string | null; sha256: string; runs: number }>;
  already_imported: Array<{ path: string; campaign: string }>;
  skipped: Array<{ path: string; reason: string }>;
  warnings: string[];
}

function importJson(state: string, args: string[]): ImportJson {
  const r = lem(['--state', state, 'results', 'import', ...args, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as ImportJson;
}
function runs(state: string, id: string): RunJson[] {
  const r = lem(['--state', state, 'results', 'export', id, '--format', 'json']);
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { runs: RunJson[] }).runs;
}
function show(state: string, id: string): ShowJson {
  const r = lem(['--state', state, 'results', 'show', id, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as ShowJson;
}
const sha = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');
const json = (path: string): Record<string, Record<string, unknown>> => JSON.parse(readFileSync(path, 'utf8')) as Record<string, Record<string, unknown>>;

describe('optimum-benchmark reports', () => {
  let state = '';
  let id = '';
  beforeAll(() => {
    state = tempDir();
    id = importJson(state, [fx('ob', 'run-a')]).campaign as string;
  });

  it('turns each repetition of a report into a run, with the per-repetition latencies and energies', () => {
    const report = json(fx('ob', 'run-a', 'benchmark_report.json'));
    const prefillValues = (report.prefill?.latency as { values: number[] }).values;
    const measures = report.prefill?.measures as Array<{ gpu: number }>;
    const rs = runs(state, id).sort((a, b) => a.cycle - b.cycle);
    expect(rs).toHaveLength(prefillValues.length);
    expect(rs.map((r) => r.status)).toEqual(prefillValues.map(() => 'succeeded'));
    expect(rs.map((r) => r.metrics.ttft_mean_s)).toEqual(prefillValues);
    rs.forEach((r, i) => expect(r.metrics.energy_gpu_prefill_j).toBeCloseTo((measures[i] as { gpu: number }).gpu * 3.6e6, 6));
    // decode energy was measured once over all repetitions: repetition 1 only, never copied.
    const decodeGpu = (report.decode?.energy as { gpu: number }).gpu * 3.6e6;
    expect(rs[0]?.metrics.energy_gpu_decode_j).toBeCloseTo(decodeGpu, 6);
    for (const r of rs.slice(1)) expect(r.metrics.energy_gpu_decode_j).toBeNull();
    // the config beside the report names the backend and keys the experiment
    const s = show(state, id);
    expect(s.experiments).toHaveLength(1);
    expect(s.experiments[0]?.name).toBe('energy_star_tiny');
  });

  it('gives intervals after import (repetitions are samples)', () => {
    const m = show(state, id).experiments[0]?.metrics ?? {};
    for (const metric of ['ttft_mean_s', 'latency_decode_mean_s', 'energy_gpu_prefill_j', 'decode_tokens_per_s']) {
      const ci = m[metric]?.description?.ci95;
      expect(ci, metric).not.toBeNull();
      expect((ci as { low: number }).low).toBeLessThan((ci as { high: number }).high);
    }
  });

  it('records provenance: tool, version, path and checksum of the report and its companions', () => {
    const db = new Database(join(state, 'lem.db'), { readonly: true });
    try {
      const rows = db.prepare('SELECT * FROM imports WHERE campaign_id = ?').all(id) as Array<{ sha256: string; source_tool: string; source_version: string; path: string; companions_json: string }>;
      expect(rows).toHaveLength(1);
      const row = rows[0] as (typeof rows)[number];
      expect(row.source_tool).toBe('optimum-benchmark');
      expect(row.source_version).toBe('0.5.0');
      expect(row.path).toBe(fx('ob', 'run-a', 'benchmark_report.json'));
      expect(row.sha256).toBe(sha(row.path));
      const companions = (JSON.parse(row.companions_json) as Array<{ path: string; sha256: string }>).map((c) => c.path).sort();
      expect(companions).toEqual(['GPU_ENERGY_SUMMARY.json', 'GPU_ENERGY_WH.txt', 'benchmark_config.json'].map((f) => fx('ob', 'run-a', f)).sort());
    } finally {
      db.close();
    }
  });

  it('importing the same files again is a no-op', () => {
    const again = importJson(state, [fx('ob', 'run-a', 'benchmark_report.json')]);
    expect(again.campaign).toBeNull();
    expect(again.already_imported.map((a) => a.campaign)).toEqual([id]);
    const list = (JSON.parse(lem(['--state', state, 'campaign', 'list', '--json']).stdout) as { campaigns: unknown[] }).campaigns;
    expect(list).toHaveLength(1);
  });

  it('reads a glob: every report and benchmark.json it matches, skipping the config with a note', () => {
    const st = tempDir();
    const r = importJson(st, [join(FIX, 'ob', '*', 'benchmark*.json')]);
    expect(r.imported.map((f) => f.path).sort()).toEqual([fx('ob', 'bad-energy', 'benchmark_report.json'), fx('ob', 'run-a', 'benchmark_report.json'), fx('ob', 'run-b', 'benchmark.json')].sort());
    expect(r.experiments).toBe(3);
    expect(r.runs).toBe(5 + 3 + 1);
    expect(r.skipped.map((s) => s.path)).toEqual([fx('ob', 'config-only', 'benchmark_config.json')]);
    expect(r.skipped[0]?.reason).toMatch(/optimum-benchmark benchmark config/);
  });

  it('keeps zero and negative energies and flags the run', () => {
    const st = tempDir();
    const r = importJson(st, [fx('ob', 'bad-energy')]);
    expect(r.flagged_runs).toBe(1);
    const [run] = runs(st, r.campaign as string);
    expect(run?.flags).toContain('imported_nonpositive_energy');
    expect(run?.metrics.energy_gpu_decode_j).toBeLessThan(0);
    expect(run?.metrics.energy_cpu_decode_j).toBe(0);
    expect(show(st, r.campaign as string).totals.flagged).toBe(1);
  });
});

describe('files that are not results', () => {
  const state = tempDir();
  const cases: Array<[string, RegExp]> = [
    [fx('ob', 'config-only', 'benchmark_config.json'), /not a result file: it looks like an optimum-benchmark benchmark config/],
    [fx('aeb', 'empty.csv'), /not a result file: it looks like an empty file/],
    [fx('aeb', 'header-only.csv'), /no data rows/],
    [fx('aeb', 'load.csv'), /a CSV with 2 data row\(s\) and columns prompt_id, prompt, max_tokens.*summary_\* and energy_\* columns/],
    [fx('llem', 'v2', 'not-a-result', 'result.json'), /a JSON object with keys schema_version, study_name/],
    [fx('configs', 'optimum', 'energy_star.yaml'), /a YAML file \(a config\?\).*lem config import/],
  ];
  for (const [path, message] of cases) {
    it(`${path.slice(FIX.length + 1)}: exit 2 saying what it looks like`, () => {
      const r = lem(['--state', state, 'results', 'import', path]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    });
  }

  it('a missing path is "no such file", in import and in compare', () => {
    const r = lem(['--state', state, 'results', 'import', fx('ob', 'nope', 'benchmark_report.json')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/no such file/);
    const c = lem(['--state', state, 'results', 'compare', 'missing/benchmark_report.json', fx('ob', 'run-b')]);
    expect(c.code).toBe(2);
    expect(c.stderr).toMatch(/missing\/benchmark_report.json: no such file/);
    expect(c.stderr).not.toMatch(/campaign/);
  });

  it('nothing was recorded', () => {
    const list = (JSON.parse(lem(['--state', state, 'campaign', 'list', '--json']).stdout) as { campaigns: unknown[] }).campaigns;
    expect(list).toHaveLength(0);
  });
});

describe('ai_energy_benchmarks CSV', () => {
  it('imports one run per row, experiments keyed by config', () => {
    const st = tempDir();
    const r = importJson(st, [fx('aeb', 'results.csv')]);
    expect(r.experiments).toBe(2);
    expect(r.runs).toBe(5);
    const s = show(st, r.campaign as string);
    const small = s.experiments.find((e) => e.name === 'small');
    expect(small?.counts.used).toBe(3);
    expect(small?.metrics.energy_gpu_j?.description?.mean).toBeCloseTo(((2.5 + 2.6 + 2.45) / 3) * 3600, 6);
    expect(small?.metrics.energy_gpu_j?.description?.ci95).not.toBeNull();
  });

  it('detects a ;-separated file and reads its decimal commas', () => {
    const st = tempDir();
    const r = importJson(st, [fx('aeb', 'results-semicolon.csv')]);
    expect(r.runs).toBe(2);
    const rs = runs(st, r.campaign as string).sort((a, b) => a.cycle - b.cycle);
    expect(rs.map((x) => x.metrics.energy_gpu_j)).toEqual([1.25 * 3600, 1.3 * 3600]);
    expect(rs[0]?.metrics.duration_s).toBe(20.5);
  });

  it('a malformed quote is an error with its line, and nothing is imported', () => {
    const st = tempDir();
    const r = lem(['--state', st, 'results', 'import', fx('aeb', 'bad-quote.csv')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/bad-quote\.csv:3: malformed CSV: Invalid Closing Quote/);
  });

  it('flags a zero energy and keeps the run', () => {
    const st = tempDir();
    const r = importJson(st, [fx('aeb', 'zero-energy.csv')]);
    expect(r.runs).toBe(2);
    const rs = runs(st, r.campaign as string).sort((a, b) => a.cycle - b.cycle);
    expect(rs[0]?.flags).toEqual([]);
    expect(rs[1]?.flags).toContain('imported_nonpositive_energy');
    expect(rs[1]?.metrics.energy_gpu_j).toBe(0);
    expect(r.warnings.join('\n')).toMatch(/line 3: energy_gpu_j = 0/);
  });
});

describe('AI Energy Score outputs and LLenergyMeasure results', () => {
  it('AI Energy Score files alone: one run with the GPU energy and its phases', () => {
    const st = tempDir();
    const r = importJson(st, [fx('aies', 'model-x')]);
    expect(r.imported.map((f) => f.source_tool)).toEqual(['ai-energy-score']);
    const [run] = runs(st, r.campaign as string);
    expect(run?.metrics.energy_gpu_j).toBeCloseTo(1.5 * 3600, 9);
    expect(run?.metrics.energy_gpu_decode_j).toBeCloseTo(1.0 * 3600, 9);
  });

  it('LLenergyMeasure v1: aggregated results, and raw process files aggregated where no aggregate exists', () => {
    const st = tempDir();
    const r = importJson(st, [fx('llem', 'v1')]);
    expect(r.imported.map((f) => f.path).sort()).toEqual([fx('llem', 'v1', 'results', 'aggregated', 'exp_0001.json'), fx('llem', 'v1', 'results', 'raw', 'exp_0002')].sort());
    expect(r.skipped.map((s) => s.path)).toEqual([fx('llem', 'v1', 'results', 'raw', 'exp_0001')]);
    const rs = runs(st, r.campaign as string);
    expect(new Set(rs.map((x) => x.experiment_id)).size).toBe(1); // same effective config
    const procs = ['process_0.json', 'process_1.json'].map((f) => json(fx('llem', 'v1', 'results', 'raw', 'exp_0002', f)));
    const fromRaw = rs.find((x) => x.metrics.processes === 2 && x.metrics.energy_gpu_j !== undefined);
    expect(fromRaw?.metrics.energy_total_j).toBe(procs.reduce((s, p) => s + (p.energy_metrics?.total_energy_j as number), 0));
    expect(fromRaw?.metrics.output_tokens_per_s).toBe(procs.reduce((s, p) => s + (p.inference_metrics?.tokens_per_second as number), 0) / 2);
    const agg = json(fx('llem', 'v1', 'results', 'aggregated', 'exp_0001.json')) as unknown as { total_energy_j: number; latency_stats: { ttft_mean_ms: number } };
    const fromAgg = rs.find((x) => x !== fromRaw);
    expect(fromAgg?.metrics.energy_total_j).toBe(agg.total_energy_j);
    expect(fromAgg?.metrics.ttft_mean_s).toBe(agg.latency_stats.ttft_mean_ms / 1000);
  });

  it('LLenergyMeasure v2: one run per result.json; the study manifest is skipped', () => {
    const st = tempDir();
    const r = importJson(st, [fx('llem', 'v2', 'study')]);
    expect(r.runs).toBe(4);
    expect(r.imported.every((f) => f.source_version === '2.1.0')).toBe(true);
    expect(r.skipped[0]?.reason).toMatch(/LLenergyMeasure v2 study manifest/);
    const s = show(st, r.campaign as string);
    const counts = s.experiments.map((e) => e.counts.used).sort();
    expect(counts).toEqual([1, 3]);
    const three = s.experiments.find((e) => e.counts.used === 3);
    expect(three?.metrics.energy_total_j?.description?.mean).toBe((900 + 930 + 915) / 3);
    expect(three?.metrics.energy_total_j?.description?.ci95).not.toBeNull();
  });
});

describe('results commands on an imported campaign', () => {
  let state = '';
  let a = '';
  let b = '';
  beforeAll(() => {
    state = tempDir();
    a = importJson(state, [fx('ob', 'run-a'), '--name', 'ob-a']).campaign as string;
    b = importJson(state, [fx('ob', 'run-b'), '--name', 'ob-b']).campaign as string;
  });

  it('show prints the imported experiments', () => {
    const r = lem(['--state', state, 'results', 'show', a]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/5 run\(s\) used of 5/);
    expect(r.stdout).toMatch(/energy_star_tiny/);
    expect(r.stdout).toContain(`imported from optimum-benchmark 0.5.0: ${fx('ob', 'run-a', 'benchmark_report.json')}`);
    const j = JSON.parse(lem(['--state', state, 'results', 'show', a, '--json']).stdout) as { imported_from: Array<{ source_tool: string; sha256: string }> };
    expect(j.imported_from.map((x) => x.source_tool)).toEqual(['optimum-benchmark']);
    expect(j.imported_from[0]?.sha256).toBe(sha(fx('ob', 'run-a', 'benchmark_report.json')));
  });

  it('compare takes imported campaigns, with intervals on both sides', () => {
    const r = lem(['--state', state, 'results', 'compare', a, b, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const cmp = JSON.parse(r.stdout) as { counts: { a: { used: number }; b: { used: number } }; metrics: Array<{ metric: string; ratio_ci: unknown; ratio: number | null }> };
    expect([cmp.counts.a.used, cmp.counts.b.used]).toEqual([5, 3]);
    const ttft = cmp.metrics.find((m) => m.metric === 'ttft_mean_s');
    expect(ttft?.ratio_ci).not.toBeNull();
    const text = lem(['--state', state, 'results', 'compare', a, b]);
    expect(text.stdout).toMatch(/ttft_mean_s/);
  });

  it('compare reads a directory side the same way as import, without recording it', () => {
    const r = lem(['--state', state, 'results', 'compare', a, fx('ob', 'run-b'), '--json']);
    expect(r.code, r.stderr).toBe(0);
    const cmp = JSON.parse(r.stdout) as { counts: { b: { used: number } }; metrics: Array<{ metric: string; ratio: number | null }> };
    expect(cmp.counts.b.used).toBe(3);
    const viaCampaign = JSON.parse(lem(['--state', state, 'results', 'compare', a, b, '--json']).stdout) as typeof cmp;
    const ratio = (c: typeof cmp): number | null | undefined => c.metrics.find((m) => m.metric === 'ttft_mean_s')?.ratio;
    expect(ratio(cmp)).toBe(ratio(viaCampaign));
    const list = (JSON.parse(lem(['--state', state, 'campaign', 'list', '--json']).stdout) as { campaigns: unknown[] }).campaigns;
    expect(list).toHaveLength(2);
  });

  it('resume refuses an imported campaign: there is nothing lem can run', () => {
    const r = lem(['--state', state, 'campaign', 'resume', a]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/holds results imported from other tools/);
  });

  it('exports and the report work on it', () => {
    const csv = lem(['--state', state, 'results', 'export', a, '--format', 'csv']);
    expect(csv.code, csv.stderr).toBe(0);
    expect(csv.stdout.trim().split('\n')).toHaveLength(1 + 5);
    const rep = lem(['--state', state, 'report', a, '--out', join(state, 'r.html')]);
    expect(rep.code, rep.stderr).toBe(0);
    expect(readFileSync(join(state, 'r.html'), 'utf8')).toMatch(/energy_star_tiny/);
  });
});
