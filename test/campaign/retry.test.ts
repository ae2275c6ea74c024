/**
 * Typed failures drive retries: the runner reads each failed attempt's kind (worker failure.json /
 * exit code, runtime timeout) into the manifest and retries only kinds a retry can fix; a backend
 * whose first run fails with missing_dependency skips its remaining runs at once. Real SQLite
 * manifest; the runtime is the scripted test double of the runtime seam (no Docker, no worker).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { classifyFailure, retryDecision } from '../../src/campaign/retry.js';
import { executeCampaign, type ProgressSink } from '../../src/campaign/runner.js';
import { planRuns } from '../../src/campaign/planner.js';
import type { CampaignSettings } from '../../src/config/campaign.js';
import { ExperimentConfig } from '../../src/config/experiment.js';
import { Manifest } from '../../src/manifest/manifest.js';
import { systemClock, type Clock } from '../../src/util/clock.js';
import { tempDir } from '../helpers/cli.js';
import { scriptedRuntime, type Script } from '../helpers/scripted-runtime.js';

const clock: Clock = { now: () => new Date(Date.UTC(2026, 0, 1)), monotonicMs: () => 0, sleep: async () => {} };
const manifests: Manifest[] = [];
afterEach(() => {
  for (const m of manifests.splice(0)) m.close();
});

function setup(backends: Array<'calibration' | 'vllm'>, cycles: number, retries: number) {
  const root = tempDir();
  const manifest = Manifest.open(join(root, 'lem.db'), systemClock);
  manifests.push(manifest);
  const settings: CampaignSettings = { cycles, structure: 'interleaved', seed: 1, thermal_gap: 0, runtime: 'local', force_cold_start: false, retries, keep_services: false };
  const exps = backends.map((backend, i) => {
    const config = backend === 'vllm' ? ExperimentConfig.parse({ backend, model: { id: 'org/m' } }) : ExperimentConfig.parse({ backend, calibration: { matrix_size: 16 + i } });
    return { id: `e${i}`, name: `exp${i}`, backend, config };
  });
  const runs = planRuns({ experimentIds: exps.map((e) => e.id), cycles, structure: 'grouped', seed: 1 });
  manifest.createCampaign({ id: 'camp', name: 'camp', sourcePath: 'x.yaml', settings, notes: [], experiments: exps, runs });
  return { root, manifest };
}

async function go(root: string, manifest: Manifest, script: Script) {
  const notes: string[] = [];
  const ended: Array<{ kind: string | null | undefined; willRetry: boolean }> = [];
  const progress: ProgressSink = { note: (m) => notes.push(m), runStarted() {}, runEnded: (e) => ended.push({ kind: e.failureKind, willRetry: e.willRetry }), waiting() {} };
  const runtime = scriptedRuntime(script);
  const outcome = await executeCampaign('camp', { manifest, runtime, clock, workspaceRoot: root, progress }, new AbortController().signal);
  return { outcome, runtime, notes, ended };
}

describe('retry policy by failure kind', () => {
  it('never retries config_error / missing_dependency, not out_of_memory; retries engine_error, lock_timeout, timeout', () => {
    expect(retryDecision('config_error', 1, 3)).toEqual({ retry: false, why: expect.stringContaining('not retried') });
    expect(retryDecision('missing_dependency', 1, 3).retry).toBe(false);
    expect(retryDecision('out_of_memory', 1, 3)).toEqual({ retry: false, why: 'out of memory is not retried with the same config' });
    for (const k of ['engine_error', 'lock_timeout', 'timeout', 'container_gone'] as const) {
      expect(retryDecision(k, 1, 3).retry).toBe(true);
      expect(retryDecision(k, 3, 3).retry).toBe(false);
    }
  });

  it('classifies a runtime timeout over the worker exit, failure.json over nothing, exit codes without it', () => {
    const dir = tempDir();
    expect(classifyFailure({ exitCode: 143, timedOut: true, failureReason: 'timed out after 5s' }, dir).kind).toBe('timeout');
    expect(classifyFailure({ exitCode: 137, timedOut: false, failureReason: 'x', failureKind: 'killed' }, dir).kind).toBe('killed');
    expect(classifyFailure({ exitCode: 4, timedOut: false, failureReason: null }, dir).kind).toBe('out_of_memory');
    expect(classifyFailure({ exitCode: 75, timedOut: false, failureReason: null }, dir).kind).toBe('lock_timeout');
    expect(classifyFailure({ exitCode: 9, timedOut: false, failureReason: null }, dir).kind).toBe('engine_error');
    // A worker's own failure.json is believed when its exit code agrees.
    writeFileSync(join(dir, 'failure.json'), JSON.stringify({ schema: 'lem.failure/1', kind: 'config_error', exit_code: 2, message: 'experiment.x: bad', detail: {} }));
    expect(classifyFailure({ exitCode: 2, timedOut: false, failureReason: null }, dir)).toEqual({ kind: 'config_error', message: 'experiment.x: bad' });
  });

  it('records each attempt’s kind; retries engine_error and lock_timeout, stops at out_of_memory (scripted runtime)', async () => {
    const { root, manifest } = setup(['calibration'], 1, 5);
    let n = 0;
    const seq: Script[] = [() => ({ exit: 1, kind: 'engine_error' }), () => ({ exit: 75, kind: 'lock_timeout' }), () => ({ exit: 4, kind: 'out_of_memory', message: 'CUDA out of memory' })];
    const { outcome, runtime, ended } = await go(root, manifest, (s) => (seq[n++] as Script)(s));
    expect(runtime.dispatched).toHaveLength(3); // 5 retries allowed; out_of_memory ended it
    expect(outcome.status).toBe('failed');
    expect(ended).toEqual([
      { kind: 'engine_error', willRetry: true },
      { kind: 'lock_timeout', willRetry: true },
      { kind: 'out_of_memory', willRetry: false },
    ]);
    const run = manifest.run('camp', 0);
    expect(run?.failureKind).toBe('out_of_memory');
    expect(run?.error).toContain('CUDA out of memory');
    expect(manifest.events('camp').filter((e) => e.kind === 'run_failed').map((e) => e.detail['failure_kind'])).toEqual(['engine_error', 'lock_timeout', 'out_of_memory']);
  });

  it('a missing_dependency on a backend’s first run skips its remaining runs (left pending), others still run', async () => {
    const { root, manifest } = setup(['vllm', 'calibration'], 3, 2);
    const { outcome, runtime, notes } = await go(root, manifest, (s) => (s.backend === 'vllm' ? { exit: 3, kind: 'missing_dependency', message: 'vllm not installed' } : 'ok'));
    expect(runtime.dispatched.filter((s) => s.backend === 'vllm')).toHaveLength(1); // no retry, no other cycle
    expect(runtime.dispatched.filter((s) => s.backend === 'calibration')).toHaveLength(3);
    expect(outcome.status).toBe('failed');
    expect(manifest.counts('camp')).toMatchObject({ succeeded: 3, failed: 1, pending: 2 });
    expect(notes.some((m) => /skipping the 2 remaining run\(s\) of backend vllm: missing_dependency/.test(m))).toBe(true);
    expect(manifest.problemsByKind('camp')).toEqual([{ kind: 'missing_dependency', status: 'failed', n: 1 }]);
  });
});
