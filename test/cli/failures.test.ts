/**
 * Typed failures and preflight through the real CLI (local runtime, real worker, real SQLite):
 * `campaign status` groups problems by kind; a campaign whose packages are missing from the local
 * interpreter fails preflight with every problem at once (exit 2) and leaves no campaign row;
 * `lem doctor foo` is a usage error naming the valid backends.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ExperimentConfig } from '../../src/config/experiment.js';
import { Manifest } from '../../src/manifest/manifest.js';
import { systemClock } from '../../src/util/clock.js';
import { lem, tempDir } from '../helpers/cli.js';

describe('typed failures and preflight (CLI)', () => {
  it('campaign status groups failed and interrupted runs by failure kind (text and --json)', () => {
    const state = tempDir('lem-kinds-');
    const m = Manifest.open(join(state, 'lem.db'), systemClock);
    try {
      const config = ExperimentConfig.parse({ backend: 'calibration' });
      const runs = [0, 1, 2, 3].map((p) => ({ position: p, experimentId: 'e0', cycle: p + 1 }));
      m.createCampaign({ id: 'k', name: 'k', sourcePath: 'k.yaml', settings: { cycles: 4, structure: 'interleaved', seed: 1, thermal_gap: 0, runtime: 'local', force_cold_start: false, retries: 0, keep_services: false }, notes: [], experiments: [{ id: 'e0', name: 'cal', backend: 'calibration', config }], runs });
      const ends = [
        { status: 'failed', failureKind: 'out_of_memory', error: 'CUDA out of memory' },
        { status: 'failed', failureKind: 'out_of_memory', error: 'CUDA out of memory' },
        { status: 'failed', failureKind: 'missing_dependency', error: 'datasets not installed' },
        { status: 'interrupted', failureKind: 'interrupted', error: 'ctrl-c' },
      ] as const;
      ends.forEach((e, p) => {
        m.markRunning('k', p, 1);
        m.markEnded('k', p, 1, { status: e.status, exitCode: null, error: e.error, failureKind: e.failureKind });
      });
    } finally {
      m.close();
    }
    const json = lem(['--state', state, 'campaign', 'status', 'k', '--json']);
    expect(json.code).toBe(0);
    const doc = JSON.parse(json.stdout) as { problems_by_kind: unknown[]; recent_problems: Array<{ failure_kind: string }> };
    expect(doc.problems_by_kind).toEqual([
      { kind: 'out_of_memory', status: 'failed', runs: 2 },
      { kind: 'interrupted', status: 'interrupted', runs: 1 },
      { kind: 'missing_dependency', status: 'failed', runs: 1 },
    ]);
    expect(doc.recent_problems.map((r) => r.failure_kind).sort()).toEqual(['interrupted', 'missing_dependency', 'out_of_memory', 'out_of_memory']);
    const text = lem(['--state', state, 'campaign', 'status', 'k']);
    expect(text.stdout).toMatch(/problems by kind:[\s\S]*out_of_memory\s+failed\s+2/);
  });

  it('a failed preflight (packages missing from the local interpreter) exits 2 listing all problems and records nothing', () => {
    const state = tempDir('lem-preflight-');
    const file = join(state, 'needs.yaml');
    // vllm is never in the test interpreter; datasets (hub prompts) neither.
    writeFileSync(
      file,
      `campaign_name: needs
base_config:
  backend: vllm
  model: { id: org/tiny }
  prompts: { source: huggingface, dataset: org/ds, split: train }
vary:
  max_output_tokens: [2, 3]
cycles: 1
runtime: local
`,
    );
    const r = lem(['--state', state, 'campaign', 'run', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/preflight failed: 2 problem\(s\); nothing was recorded or started/);
    expect(r.stderr).toMatch(/Python package vllm is not installed in the local interpreter .* \(needed by backend vllm\)/);
    expect(r.stderr).toMatch(/Python package datasets is not installed .* \(needed by prompts\.source huggingface\)/);
    expect(r.stderr).not.toMatch(/at .*\.js:\d+/); // no stack trace
    const list = lem(['--state', state, 'campaign', 'list', '--json']);
    expect((JSON.parse(list.stdout) as { campaigns: unknown[] }).campaigns).toEqual([]);
  });

  it('a local interpreter that does not exist fails preflight with its fix (exit 2, no campaign)', () => {
    const state = tempDir('lem-nopython-');
    const r = lem(['--state', state, 'campaign', 'run', 'test/fixtures/campaigns/tiny-calibration.yaml'], { env: { LEM_PYTHON: '/nonexistent/python3' } });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('cannot start /nonexistent/python3');
    expect(r.stderr).toContain('set LEM_PYTHON');
    expect((JSON.parse(lem(['--state', state, 'campaign', 'list', '--json']).stdout) as { campaigns: unknown[] }).campaigns).toEqual([]);
  });

  it('campaign resume preflights the backends of its runs left to do: exit 2, nothing claimed or run', () => {
    const state = tempDir('lem-resume-pre-');
    const m = Manifest.open(join(state, 'lem.db'), systemClock);
    try {
      const config = ExperimentConfig.parse({ backend: 'vllm', model: { id: 'org/tiny' } });
      const settings = { cycles: 2, structure: 'interleaved', seed: 1, thermal_gap: 0, runtime: 'local', force_cold_start: false, retries: 0, keep_services: false } as const;
      m.createCampaign({ id: 'rv', name: 'rv', sourcePath: 'rv.yaml', settings, notes: [], experiments: [{ id: 'e0', name: 'v', backend: 'vllm', config }], runs: [1, 2].map((c) => ({ position: c - 1, experimentId: 'e0', cycle: c })) });
    } finally {
      m.close();
    }
    const r = lem(['--state', state, 'campaign', 'resume', 'rv']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/preflight failed: 1 problem\(s\)[\s\S]*Python package vllm is not installed/);
    const doc = JSON.parse(lem(['--state', state, 'campaign', 'status', 'rv', '--json']).stdout) as { status: string; runs: Record<string, number> };
    expect(doc.status).toBe('planned');
    expect(doc.runs).toMatchObject({ pending: 2, running: 0, failed: 0 });
  });

  it('lem doctor with an unknown backend exits 2 and lists the valid ones', () => {
    const r = lem(['doctor', 'foo']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown backend foo; valid backends: pytorch, vllm, tensorrt, calibration');
  });
});
