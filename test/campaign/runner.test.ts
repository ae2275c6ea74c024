/** The campaign runner's policy (retries, gaps, ingest, interruption, recovery) on a real manifest. */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { executeCampaign, runDir, type ProgressSink } from '../../src/campaign/runner.js';
import { planRuns } from '../../src/campaign/planner.js';
import type { CampaignSettings } from '../../src/config/campaign.js';
import { ExperimentConfig } from '../../src/config/experiment.js';
import { Manifest, runId } from '../../src/manifest/manifest.js';
import type { Clock } from '../../src/util/clock.js';
import { systemClock } from '../../src/util/clock.js';
import { tempDir } from '../helpers/cli.js';
import { scriptedRuntime, v1Result, type Script } from '../helpers/scripted-runtime.js';

const quiet: ProgressSink = { note() {}, runStarted() {}, runEnded() {}, waiting() {} };

function fakeClock(): Clock & { sleeps: number[] } {
  let t = 0;
  const sleeps: number[] = [];
  return {
    sleeps,
    now: () => new Date(Date.UTC(2026, 0, 1) + t),
    monotonicMs: () => t,
    sleep: async (ms) => {
      sleeps.push(ms);
      t += ms;
    },
  };
}

const manifests: Manifest[] = [];
afterEach(() => {
  for (const m of manifests.splice(0)) m.close();
});

function setup(over: Partial<CampaignSettings> = {}, experiments = 2, cycles = 2) {
  const root = tempDir();
  const manifest = Manifest.open(join(root, 'lem.db'), systemClock);
  manifests.push(manifest);
  const settings: CampaignSettings = { cycles, structure: 'interleaved', seed: 1, thermal_gap: 5, runtime: 'local', force_cold_start: false, retries: 0, keep_services: false, ...over };
  const exps = Array.from({ length: experiments }, (_, i) => {
    const config = ExperimentConfig.parse({ backend: 'calibration', calibration: { matrix_size: 16 + i } });
    return { id: `e${i}`, name: `exp${i}`, backend: 'calibration' as const, config };
  });
  const runs = planRuns({ experimentIds: exps.map((e) => e.id), cycles, structure: settings.structure, seed: settings.seed });
  manifest.createCampaign({ id: 'camp', name: 'camp', sourcePath: 'x.yaml', settings, notes: [], experiments: exps, runs });
  return { root, manifest };
}

async function go(root: string, manifest: Manifest, script: Script, clock = fakeClock(), signal = new AbortController().signal) {
  const runtime = scriptedRuntime(script);
  const outcome = await executeCampaign('camp', { manifest, runtime, clock, workspaceRoot: root, progress: quiet }, signal);
  return { outcome, runtime, clock };
}

describe('campaign runner', () => {
  it('runs every run once, ingests metrics, waits the thermal gap only between runs, tears down', async () => {
    const { root, manifest } = setup();
    const { outcome, runtime, clock } = await go(root, manifest, () => 'ok');
    expect(outcome.status).toBe('completed');
    expect(runtime.dispatched).toHaveLength(4);
    expect(runtime.prepared).toEqual([['calibration']]);
    expect(runtime.shutdowns).toBe(1);
    expect(clock.sleeps).toEqual([5000, 5000, 5000]);
    const runs = manifest.runs('camp');
    expect(runs.every((r) => r.status === 'succeeded' && r.attempt === 1)).toBe(true);
    expect(runs.map((r) => r.metrics?.['flops_per_s'])).toEqual(runs.map((r) => 1e9 + r.cycle));
    expect(manifest.campaign('camp')?.status).toBe('completed');
    expect(manifest.campaign('camp')?.ownerPid).toBeNull();
  });

  it('retries a failed run up to the policy and records each attempt', async () => {
    const { root, manifest } = setup({ retries: 2 }, 1, 1);
    let calls = 0;
    const { outcome } = await go(root, manifest, () => (++calls < 3 ? 'exit1' : 'ok'));
    expect(outcome.status).toBe('completed');
    const run = manifest.run('camp', 0);
    expect(run?.attempt).toBe(3);
    expect(run?.resultPath).toBe(join(runDir(root, 'camp', run!, 3), 'result.json'));
    expect(manifest.events('camp').filter((e) => e.kind === 'run_failed').map((e) => e.detail['attempt'])).toEqual([1, 2]);
  });

  it('gives up after the retries and reports the campaign failed', async () => {
    const { root, manifest } = setup({ retries: 1 }, 1, 2);
    const { outcome, runtime } = await go(root, manifest, () => 'exit1');
    expect(outcome.status).toBe('failed');
    expect(runtime.dispatched).toHaveLength(4);
    expect(manifest.runs('camp').map((r) => r.status)).toEqual(['failed', 'failed']);
    expect(manifest.run('camp', 0)?.error).toMatch(/exited with code 1: scripted exit1/);
  });

  it('fails a run whose result does not validate, with the reason, and records no metrics', async () => {
    const { root, manifest } = setup({}, 1, 1);
    await go(root, manifest, () => 'bad-result');
    const run = manifest.run('camp', 0);
    expect(run?.status).toBe('failed');
    expect(run?.error).toMatch(/result\.json: result does not match schema/);
    expect(run?.metrics).toBeNull();
    expect(run?.resultPath).toBeNull();
  });

  it('on interruption marks the running run interrupted and leaves the rest pending; resume finishes', async () => {
    const { root, manifest } = setup({ thermal_gap: 0 }, 2, 2);
    const ctl = new AbortController();
    const { outcome } = await go(root, manifest, (spec) => {
      if (spec.cycle === 2) setTimeout(() => ctl.abort(), 10);
      return spec.cycle === 2 ? 'hang' : 'ok';
    }, fakeClock(), ctl.signal);
    expect(outcome.status).toBe('interrupted');
    expect(manifest.runs('camp').map((r) => r.status)).toEqual(['succeeded', 'succeeded', 'interrupted', 'pending']);
    expect(manifest.campaign('camp')?.status).toBe('interrupted');

    const again = await go(root, manifest, () => 'ok');
    expect(again.outcome.status).toBe('completed');
    expect(again.runtime.dispatched.map((s) => `${s.runId}/a${s.attempt}`)).toEqual([`${runId('camp', 2)}/a2`, `${runId('camp', 3)}/a1`]);
  });

  it('recovers a run that finished while the orchestrator was dead, and reruns one that did not', async () => {
    const { root, manifest } = setup({ thermal_gap: 0 }, 2, 1);
    // Simulate a kill -9: both runs left 'running'; run 0 had written its result, run 1 had not.
    for (const pos of [0, 1]) {
      manifest.markRunning('camp', pos, 1);
      manifest.setHandle('camp', pos, 1, 'scripted:dead');
    }
    const r0 = manifest.run('camp', 0)!;
    const dir0 = runDir(root, 'camp', r0, 1);
    mkdirSync(dir0, { recursive: true });
    writeFileSync(
      join(dir0, 'result.json'),
      JSON.stringify(v1Result({ runId: runId('camp', 0), experimentId: r0.experimentId, cycle: 1, attempt: 1, backend: 'calibration', configPath: '', outDir: dir0, logPath: '', timeoutS: null, attemptToken: 'lem-camp-p0-a1' })),
    );
    const { outcome, runtime } = await go(root, manifest, () => 'ok');
    expect(outcome.status).toBe('completed');
    expect(runtime.dispatched.map((s) => s.runId)).toEqual([runId('camp', 1)]);
    expect(manifest.events('camp').filter((e) => e.kind === 'run_recovered').map((e) => e.position)).toEqual([0]);
    expect(manifest.run('camp', 1)?.attempt).toBe(2);
    expect(existsSync(join(runDir(root, 'camp', manifest.run('camp', 1)!, 2), 'result.json'))).toBe(true);
  });

  it('on resume stops every live worker of the campaign (found by token, no handle recorded) before dispatching anything', async () => {
    const { root, manifest } = setup({ thermal_gap: 0 }, 2, 1);
    // A kill -9 between markRunning and setHandle: the run is 'running' with a token but no handle.
    manifest.markRunning('camp', 0, 1, 'lem-camp-p0-a1');
    const runtime = scriptedRuntime(() => 'ok');
    runtime.live = [
      { token: 'lem-camp-p0-a1', pid: 4242, where: 'pid 4242' },
      { token: 'lem-other-p0-a1', pid: 4343, where: 'pid 4343' },
    ];
    const notes: string[] = [];
    const outcome = await executeCampaign('camp', { manifest, runtime, clock: fakeClock(), workspaceRoot: root, progress: { ...quiet, note: (m) => notes.push(m) } }, new AbortController().signal);
    expect(outcome.status).toBe('completed');
    expect(runtime.calls).toEqual(['stopWorkers', 'dispatch lem-camp-p0-a2', 'dispatch lem-camp-p1-a1']);
    expect(runtime.live.map((w) => w.token)).toEqual(['lem-other-p0-a1']);
    expect(manifest.events('camp').find((e) => e.kind === 'workers_stopped')?.detail).toEqual({ workers: [{ token: 'lem-camp-p0-a1', where: 'pid 4242' }] });
    expect(notes.join('\n')).toMatch(/stopped 1 worker\(s\) left running by an earlier session: lem-camp-p0-a1/);
    expect(manifest.runs('camp').map((r) => r.attemptToken)).toEqual(['lem-camp-p0-a2', 'lem-camp-p1-a1']);
  });

  it('says so when another campaign of the manifest is running', async () => {
    const { root, manifest } = setup({ thermal_gap: 0 }, 1, 1);
    manifest.createCampaign({ id: 'other', name: 'other', sourcePath: 'y.yaml', settings: manifest.campaign('camp')!.settings, notes: [], experiments: [], runs: [] });
    manifest.claim('other', process.pid, 'elsewhere');
    const notes: string[] = [];
    await executeCampaign('camp', { manifest, runtime: scriptedRuntime(() => 'ok'), clock: fakeClock(), workspaceRoot: root, progress: { ...quiet, note: (m) => notes.push(m) } }, new AbortController().signal);
    expect(notes).toContainEqual(expect.stringMatching(/^campaign other \(pid \d+ on elsewhere\) is running; runs will wait for the device lock/));
  });

  it('refuses, without claiming the campaign, a stored config this lem cannot read', async () => {
    const root = tempDir();
    const manifest = Manifest.open(join(root, 'lem.db'), systemClock);
    manifests.push(manifest);
    const settings: CampaignSettings = { cycles: 1, structure: 'interleaved', seed: 1, thermal_gap: 0, runtime: 'local', force_cold_start: false, retries: 0, keep_services: false };
    const bogus = { backend: 'from-the-future' } as unknown as ExperimentConfig;
    manifest.createCampaign({ id: 'camp', name: 'camp', sourcePath: 'x', settings, notes: [], experiments: [{ id: 'e0', name: 'e0', backend: 'calibration', config: bogus }], runs: [{ position: 0, experimentId: 'e0', cycle: 1 }] });
    await expect(go(root, manifest, () => 'ok')).rejects.toThrow(/recorded with a config this lem cannot read/);
    expect(manifest.campaign('camp')?.ownerPid).toBeNull();
    expect(manifest.run('camp', 0)?.status).toBe('pending');
  });
});
