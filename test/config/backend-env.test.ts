/**
 * BENCHMARK_BACKEND: fills the backend of configs that leave it open (optimum → pytorch with the
 * energy_star settings, config values winning), through the real CLI and as a unit.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { applyBackendEnv, ENERGY_STAR_PRESET } from '../../src/config/backend-env.js';
import { lem, tempDir } from '../helpers/cli.js';

describe('applyBackendEnv', () => {
  it('leaves a config alone when the env is unset or the config names its backend', () => {
    const cfg = { model: { id: 'gpt2' } };
    expect(applyBackendEnv(cfg, {}).data).toBe(cfg);
    const named = { backend: 'vllm', model: { id: 'gpt2' } };
    expect(applyBackendEnv(named, { BENCHMARK_BACKEND: 'optimum' }).data).toBe(named);
  });

  it('optimum fills the energy_star settings only where the config is open', () => {
    const out = applyBackendEnv({ model: { id: 'gpt2' }, max_output_tokens: 32, decoder: { preset: 'standard' } }, { BENCHMARK_BACKEND: 'optimum' });
    expect(out.data).toMatchObject({
      backend: 'pytorch',
      max_output_tokens: 32,
      decoder: { preset: 'standard', fixed_length: true },
      batching: { strategy: 'static', batch_size: 1 },
      prompts: ENERGY_STAR_PRESET.prompts as object,
      warmup: { mode: 'fixed', iterations: 11 },
      measurement: { prefill_split: true },
      extra: { scenario: 'energy_star' },
    });
    expect(out.note).toContain('energy_star');
    // a prompts block of the config replaces the preset's (a tagged union is not merged)
    const own = applyBackendEnv({ model: { id: 'gpt2' }, prompts: { source: 'synthetic', input_len: 8 } }, { BENCHMARK_BACKEND: 'optimum' });
    expect(own.data.prompts).toEqual({ source: 'synthetic', input_len: 8 });
  });

  it('rejects an invalid value, listing the valid ones (case-insensitive values accepted)', () => {
    expect(() => applyBackendEnv({}, { BENCHMARK_BACKEND: 'onnx' })).toThrow(/valid values: optimum, pytorch, vllm, tensorrt, calibration/);
    expect(applyBackendEnv({}, { BENCHMARK_BACKEND: 'VLLM' }).data.backend).toBe('vllm');
  });
});

describe('BENCHMARK_BACKEND through the CLI', () => {
  const dir = tempDir('lem-backend-env-');
  const exp = join(dir, 'open.yaml');
  writeFileSync(exp, 'model:\n  id: gpt2\nmax_output_tokens: 20\n');
  const campaign = join(dir, 'grid.yaml');
  writeFileSync(campaign, 'campaign_name: open-grid\nbase_config:\n  calibration:\n    duration_s: 0.2\nvary:\n  calibration.matrix_size: [16, 32]\ncycles: 1\nthermal_gap: 0\n');
  const env = (v: string | undefined) => ({ BENCHMARK_BACKEND: v ?? '' });

  it('without it, a config with no backend is the positioned error', () => {
    const r = lem(['config', 'validate', exp], { env: env(undefined) });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/open\.yaml:1:1: field 'backend'/);
  });

  it('with it, the backend is filled (optimum: pytorch with energy_star settings)', () => {
    const v = lem(['config', 'validate', exp, '--json'], { env: env('vllm') });
    expect(v.code, v.stderr).toBe(0);
    expect((JSON.parse(v.stdout) as { backend: string }).backend).toBe('vllm');
    const o = lem(['config', 'validate', exp, '--json'], { env: env('optimum') });
    const cfg = (JSON.parse(o.stdout) as { config: Record<string, unknown> }).config;
    expect(cfg).toMatchObject({ backend: 'pytorch', max_output_tokens: 20, batching: { batch_size: 1 }, extra: { scenario: 'energy_star' } });
    const bad = lem(['config', 'validate', exp], { env: env('optimum-benchmark') });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('valid values: optimum, pytorch, vllm, tensorrt, calibration');
  });

  it('a grid whose base leaves the backend open runs on the env backend', () => {
    const state = tempDir('lem-backend-env-state-');
    const r = lem(['--state', state, 'campaign', 'run', campaign, '--json'], { env: env('calibration') });
    expect(r.code, r.stderr).toBe(0);
    const status = JSON.parse(lem(['--state', state, 'results', 'show', (JSON.parse(r.stdout) as { campaign: string }).campaign, '--json']).stdout) as { experiments: { backend: string }[] };
    expect(status.experiments.map((e) => e.backend)).toEqual(['calibration', 'calibration']);
  });
});
