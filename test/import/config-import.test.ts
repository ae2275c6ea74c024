/**
 * `lem config import` through the CLI, on configs written for lem from the documented shapes of
 * LLenergyMeasure v1/v2, optimum-benchmark (Hydra) and ai_energy_benchmarks (test/fixtures/import/configs).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { lem, ROOT, tempDir } from '../helpers/cli.js';

const CFG = join(ROOT, 'test', 'fixtures', 'import', 'configs');
const fx = (...p: string[]): string => join(CFG, ...p);
interface Cfg {
  backend?: string;
  model: { id: string };
  precision?: string;
  max_output_tokens?: number;
  prompts?: unknown;
  decoder?: { fixed_length?: boolean };
}
const yamlOf = (path: string): Record<string, unknown> => parseYaml(readFileSync(path, 'utf8')) as Record<string, unknown>;

function convert(files: string[], extra: string[] = []): { code: number | null; yaml: string; stdout: string; stderr: string; out: string } {
  const out = join(tempDir(), 'campaign.yaml');
  const r = lem(['config', 'import', ...files, '-o', out, ...extra]);
  let yaml = '';
  try {
    yaml = readFileSync(out, 'utf8');
  } catch {
    // not written
  }
  return { code: r.code, yaml, stdout: r.stdout, stderr: r.stderr, out };
}

function checked(stdout: string): { experiments: number; cycles: number } {
  const m = /check: valid lem campaign '[^']+': (\d+) experiment\(s\) × (\d+) cycle\(s\)/.exec(stdout);
  expect(m, stdout).not.toBeNull();
  return { experiments: Number(m?.[1]), cycles: Number(m?.[2]) };
}

/** The line after a comment line that contains `text`. */
function lineAfterComment(yaml: string, text: string): string | undefined {
  const lines = yaml.split('\n');
  const i = lines.findIndex((l) => l.trim().startsWith('#') && l.includes(text));
  if (i < 0) return undefined;
  return lines.slice(i + 1).find((l) => !l.trim().startsWith('#'));
}

describe('LLenergyMeasure v1', () => {
  it('a grid campaign: backends and axes (which v1 ignored) become vary; --check counts the expansion', () => {
    const src = yamlOf(fx('llem-v1', 'campaign.yaml'));
    const grid = src.grid as { backends: unknown[]; axes: Record<string, unknown[]> };
    const r = convert([fx('llem-v1', 'campaign.yaml')], ['--check']);
    expect(r.code, r.stderr).toBe(0);
    const out = parseYaml(r.yaml) as { vary: Record<string, unknown[]>; cycles: number; structure: string; thermal_gap: number; force_cold_start: boolean; base_config: Record<string, unknown> };
    expect(out.vary.backend).toEqual(grid.backends);
    expect(out.vary.precision).toEqual(['fp16', 'bf16']);
    expect(out.vary['batching.batch_size']).toEqual(grid.axes['batching.batch_size']);
    const exec = src.execution as { cycles: number; structure: string; config_gap_seconds: number };
    expect([out.cycles, out.structure, out.thermal_gap, out.force_cold_start]).toEqual([exec.cycles, exec.structure, exec.config_gap_seconds, true]);
    // every mapped axis multiplies; the unmappable one is commented, not expanded
    const mapped = Object.entries(grid.axes).filter(([k]) => k !== 'pytorch.flash_attention');
    const expected = grid.backends.length * mapped.reduce((p, [, v]) => p * v.length, 1);
    expect(checked(r.stdout)).toEqual({ experiments: expected, cycles: exec.cycles });
    // unmapped keys: a comment at the key, and a warning on stderr
    expect(lineAfterComment(r.yaml, 'could not map grid.axes.pytorch.flash_attention')).toMatch(/^vary:/);
    expect(lineAfterComment(r.yaml, 'could not map execution.cycle_gap_seconds')).toMatch(/^thermal_gap:/);
    // daemon {at: 02:00, interval: 24h, total_duration: 7d} → one daily time, 7 fires
    const daemon = src.daemon as { at: string; interval: string; total_duration: string };
    expect([daemon.interval, daemon.total_duration]).toEqual(['24h', '7d']);
    expect((out as unknown as { schedule: unknown }).schedule).toEqual({ at: [daemon.at], max_fires: 7 });
    expect(r.stderr).toMatch(/daemon: became schedule:.*lem daemon run/);
    expect(r.yaml).toMatch(/# lem: could not map base-experiment.yaml: random_seed: 7/);
    for (const key of ['grid.axes.pytorch.flash_attention', 'execution.cycle_gap_seconds', 'random_seed']) expect(r.stderr).toContain(key);
    const v = lem(['config', 'validate', r.out]);
    expect(v.code, v.stderr).toBe(0);
  });

  it('a campaign listing v1 experiment files: each converted inline', () => {
    const r = convert([fx('llem-v1', 'campaign-configs.yaml')], ['--check']);
    expect(r.code, r.stderr).toBe(0);
    const out = parseYaml(r.yaml) as { configs: Array<{ name: string; backend: string; precision: string }> };
    expect(out.configs.map((c) => [c.name, c.backend, c.precision])).toEqual([
      ['exp-a', 'pytorch', 'bf16'],
      ['exp-b', 'vllm', 'bf16'],
    ]);
    expect(checked(r.stdout)).toEqual({ experiments: 2, cycles: 2 });
    expect(r.yaml).toMatch(/# lem: could not map exp-b.yaml: vllm.swap_space: 4/);
  });

  it('several experiment files make one campaign', () => {
    const r = convert([fx('llem-v1', 'exp-a.yaml'), fx('llem-v1', 'exp-b.yaml')], ['--check']);
    expect(r.code, r.stderr).toBe(0);
    expect(checked(r.stdout).experiments).toBe(2);
  });
});

describe('LLenergyMeasure v2', () => {
  it('a sweep study: sweep → vary, execution → campaign settings', () => {
    const src = yamlOf(fx('llem-v2', 'study.yaml'));
    const sweep = src.sweep as Record<string, unknown[]>;
    const exec = src.execution as { n_cycles: number; shuffle_seed: number };
    const r = convert([fx('llem-v2', 'study.yaml')], ['--check']);
    expect(r.code, r.stderr).toBe(0);
    const out = parseYaml(r.yaml) as { vary: Record<string, unknown[]>; seed: number; structure: string };
    expect(out.vary['batching.batch_size']).toEqual(sweep['pytorch.batch_size']);
    expect([out.seed, out.structure]).toEqual([exec.shuffle_seed, 'shuffled']);
    const expected = Object.values(sweep).reduce((p, v) => p * v.length, 1);
    expect(checked(r.stdout)).toEqual({ experiments: expected, cycles: exec.n_cycles });
    expect(lineAfterComment(r.yaml, 'could not map execution.cycle_gap_seconds')).toMatch(/^thermal_gap:/);
  });

  it('sweep beside listed experiments: the sweep is expanded into the list', () => {
    const src = yamlOf(fx('llem-v2', 'study-mixed.yaml'));
    const r = convert([fx('llem-v2', 'study-mixed.yaml')], ['--check']);
    expect(r.code, r.stderr).toBe(0);
    const expected = (src.sweep as Record<string, unknown[]>)['pytorch.batch_size']?.length ?? 0;
    expect(checked(r.stdout).experiments).toBe(expected + (src.experiments as unknown[]).length);
    expect(r.yaml).not.toMatch(/[&*]a\d/); // no YAML aliases
  });
});

describe('optimum-benchmark and ai_energy_benchmarks', () => {
  it('an optimum-benchmark Hydra config: backend from defaults, backend block and scenario mapped', () => {
    const src = yamlOf(fx('optimum', 'energy_star.yaml'));
    const r = convert([fx('optimum', 'energy_star.yaml')], ['--check']);
    expect(r.code, r.stderr).toBe(0);
    const [cfg] = (parseYaml(r.yaml) as { configs: Cfg[] }).configs;
    const sc = src.scenario as { num_samples: number; generate_kwargs: { max_new_tokens: number }; dataset_name: string };
    expect(cfg?.backend).toBe('pytorch');
    expect(cfg?.model.id).toBe((src.backend as { model: string }).model);
    expect(cfg?.precision).toBe('bf16');
    expect(cfg?.max_output_tokens).toBe(sc.generate_kwargs.max_new_tokens);
    expect(cfg?.prompts).toMatchObject({ source: 'huggingface', dataset: sc.dataset_name, count: sc.num_samples });
    expect(checked(r.stdout).experiments).toBe(1);
    for (const key of ['launcher', 'hydra', 'backend.low_cpu_mem_usage', 'scenario.truncation']) expect(r.yaml).toContain(`# lem: could not map ${key}`);
  });

  it('an ai_energy_benchmarks config: backend.type, scenario; endpoint, metrics and reporter commented', () => {
    const r = convert([fx('aeb', 'config.yaml')], ['--check']);
    expect(r.code, r.stderr).toBe(0);
    const [cfg] = (parseYaml(r.yaml) as { configs: Cfg[] }).configs;
    expect(cfg?.backend).toBe('vllm');
    expect(cfg?.decoder?.fixed_length).toBe(false); // min_new_tokens < max_new_tokens
    expect(checked(r.stdout).experiments).toBe(1);
    expect(lineAfterComment(r.yaml, 'could not map backend.endpoint')).toMatch(/^configs:/);
    for (const key of ['metrics', 'reporter', 'backend.endpoint']) expect(r.stderr).toContain(`could not map ${key}`);
  });

  it('prints the campaign on stdout without -o', () => {
    const r = lem(['config', 'import', fx('aeb', 'config.yaml')]);
    expect(r.code, r.stderr).toBe(0);
    expect((parseYaml(r.stdout) as { campaign_name: string }).campaign_name).toBe('aeb_vllm_tiny');
  });
});

describe('what it refuses', () => {
  it('a lem campaign, a result file and a missing file: exit 2 with the reason', () => {
    const own = lem(['config', 'import', join(ROOT, 'campaigns', 'quickstart.yaml')]);
    expect(own.code).toBe(2);
    expect(own.stderr).toMatch(/already a lem campaign/);
    const result = lem(['config', 'import', join(ROOT, 'test', 'fixtures', 'import', 'ob', 'run-a', 'benchmark_report.json')]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/not a config lem can convert/);
    const missing = lem(['config', 'import', fx('nope.yaml')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/no such file/);
  });
});
