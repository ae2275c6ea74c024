/**
 * The docker runtime's persistent worker (`lem_worker serve` in the service container, this
 * checkout's worker mounted over the image's), with the worker's fake engine (LEM_FAKE_ENGINE in the
 * service's environment: each load takes 0.2 s, an experiment id that fails like a CUDA OOM).
 * Real engine, real calibration runs; checks read the result files and `ps` inside the container.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execCapture } from '../../src/runtime/docker/exec.js';
import { createDockerRuntime } from '../../src/runtime/docker/runtime.js';
import type { RunSpec } from '../../src/runtime/types.js';
import { docker, engine, removeCampaignContainers, requireEngine, runDockerTests, tempWorkspace, TEST_IMAGE, uniqueId } from './engine.js';

const campaigns: string[] = [];

interface Engine {
  worker: string;
  worker_pid: number;
  loaded_for_run: boolean;
  reuse_count: number;
}

describe.skipIf(!runDockerTests)('docker runtime: persistent worker (real engine, fake engine backend)', () => {
  let root: string;
  let composeFile: string;

  beforeAll(async () => {
    await requireEngine();
    root = tempWorkspace();
    composeFile = join(root, 'docker-compose.yml');
    const fake = JSON.stringify({ load_s: 0.2, oom_on: 'exp-oom' });
    writeFileSync(composeFile, `name: lemserve\nservices:\n  cpu:\n    image: ${TEST_IMAGE}\n    environment: { LEM_FAKE_ENGINE: '${fake}' }\n`);
  });

  afterAll(async () => {
    for (const id of campaigns) await removeCampaignContainers(id);
  });

  let seq = 0;
  function spec(campaignId: string, exp: string, durationS = 0.05): RunSpec {
    seq++;
    const outDir = join(root, 'runs', campaignId, `r${seq}`);
    mkdirSync(outDir, { recursive: true });
    const config = {
      run: { run_id: `${campaignId}:${seq}`, experiment_id: exp, cycle: 1, attempt: 1 },
      experiment: {
        backend: 'calibration',
        measurement: { idle_baseline_s: 0, min_window_s: 0, sample_interval_ms: 100, cross_check_threshold: 0.05 },
        extra: {},
        calibration: { matrix_size: 32, duration_s: durationS, dtype: 'float64', device: 'cpu' },
      },
    };
    writeFileSync(join(outDir, 'config.json'), JSON.stringify(config));
    return { runId: `${campaignId}:${seq}`, experimentId: exp, cycle: 1, attempt: 1, backend: 'calibration', configPath: join(outDir, 'config.json'), outDir, logPath: join(outDir, 'worker.log'), timeoutS: null, attemptToken: `lem-${campaignId}-p${seq}-a1` };
  }
  const engineOf = (s: RunSpec): Engine => (JSON.parse(readFileSync(join(s.outDir, 'result.json'), 'utf8')) as { engine: Engine }).engine;

  it('runs share one worker and one loaded engine; a fake OOM ends only its run (exit 4) and a worker killed between runs is replaced', async () => {
    const id = uniqueId('srv');
    campaigns.push(id);
    const rt = createDockerRuntime({ engine, composeFiles: [composeFile], mountWorker: true, healthTimeoutS: 60, killGraceMs: 1_000, worker: 'persistent' });
    const never = new AbortController().signal;
    try {
      await rt.prepare(['calibration'], { campaignId: id, workspaceRoot: root, forceColdStart: false });
      const specs = [spec(id, 'exp-a'), spec(id, 'exp-a'), spec(id, 'exp-a')];
      for (const s of specs) expect(await rt.dispatch(s, never, () => undefined)).toEqual({ exitCode: 0, timedOut: false, failureReason: null });
      const engines = specs.map(engineOf);
      expect(engines.map((e) => [e.worker, e.loaded_for_run, e.reuse_count])).toEqual([['persistent', true, 0], ['persistent', false, 1], ['persistent', false, 2]]);
      expect(new Set(engines.map((e) => e.worker_pid)).size).toBe(1);
      expect(readFileSync(specs[1]!.logPath, 'utf8')).toMatch(/experiment exp-a/);

      const oom = spec(id, 'exp-oom');
      expect(await rt.dispatch(oom, never, () => undefined)).toEqual({ exitCode: 4, timedOut: false, failureReason: null });
      expect(JSON.parse(readFileSync(join(oom.outDir, 'failure.json'), 'utf8'))).toMatchObject({ kind: 'out_of_memory' });
      const containerId = rt.serviceContainers()['cpu'] as string;
      expect((await execCapture(docker, containerId, ['ps', '-eo', 'args'])).stdout).not.toMatch(/lem_worker serve/); // recycled

      const next = spec(id, 'exp-a');
      expect((await rt.dispatch(next, never, () => undefined)).exitCode).toBe(0);
      const pid = engineOf(next).worker_pid;
      expect(engineOf(next).loaded_for_run).toBe(true);
      expect((await execCapture(docker, containerId, ['kill', '-9', String(pid)], { user: '0' })).exitCode).toBe(0); // a crash between runs
      const after = spec(id, 'exp-a');
      expect((await rt.dispatch(after, never, () => undefined)).exitCode).toBe(0);
      expect(engineOf(after).worker_pid).not.toBe(pid);
      expect(engineOf(after).loaded_for_run).toBe(true);
    } finally {
      await rt.shutdown({ keepServices: false });
    }
  }, 180_000);

  it('the running attempt is found by its token inside the container and stopped', async () => {
    const id = uniqueId('srvstop');
    campaigns.push(id);
    const rt = createDockerRuntime({ engine, composeFiles: [composeFile], mountWorker: true, healthTimeoutS: 60, killGraceMs: 1_000, worker: 'persistent' });
    try {
      await rt.prepare(['calibration'], { campaignId: id, workspaceRoot: root, forceColdStart: false });
      const long = spec(id, 'exp-long', 60);
      const outcome = rt.dispatch(long, new AbortController().signal, () => undefined);
      let found: Awaited<ReturnType<typeof rt.findWorkers>> = [];
      for (let i = 0; i < 100 && found.length === 0; i++) {
        await new Promise((r) => setTimeout(r, 100));
        found = await rt.findWorkers(id);
      }
      expect(found.map((w) => w.token)).toEqual([long.attemptToken]);
      expect((await rt.stopWorkers(id)).map((w) => w.token)).toEqual([long.attemptToken]);
      expect((await outcome).exitCode).not.toBe(0);
      expect(await rt.findWorkers(id)).toEqual([]);
      expect((await rt.dispatch(spec(id, 'exp-a'), new AbortController().signal, () => undefined)).exitCode).toBe(0);
    } finally {
      await rt.shutdown({ keepServices: false });
    }
  }, 180_000);
});
