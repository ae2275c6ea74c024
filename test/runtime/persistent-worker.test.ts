/**
 * The local runtime's persistent worker (`lem_worker serve`), with the worker's fake engine
 * (LEM_FAKE_ENGINE: each load sleeps and is counted in a file; an experiment id can make it fail
 * like a CUDA OOM). Real processes, real calibration runs, real result files.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createLocalRuntime } from '../../src/runtime/local.js';
import { attemptToken, type Runtime, type RunSpec } from '../../src/runtime/types.js';
import { tempDir } from '../helpers/cli.js';

interface Engine {
  worker: string;
  worker_pid: number;
  loaded_for_run: boolean;
  reuse_count: number;
  cold_start: boolean;
  load_s: number | null;
}

const runtimes: Runtime[] = [];
afterEach(async () => {
  for (const rt of runtimes.splice(0)) await rt.shutdown({ keepServices: false });
});

function setup(fake: Record<string, unknown> = {}, forceColdStart = false): { rt: Runtime; root: string; loads: () => number; spec: (exp: string, durationS?: number) => RunSpec } {
  const root = tempDir('lem-serve-');
  const loadsFile = join(root, 'loads');
  const rt = createLocalRuntime({ worker: 'persistent', env: { LEM_FAKE_ENGINE: JSON.stringify({ load_s: 0.2, loads_file: loadsFile, ...fake }) } });
  runtimes.push(rt);
  void rt.prepare(['calibration'], { campaignId: 'srv', workspaceRoot: root, forceColdStart });
  let n = 0;
  const spec = (exp: string, durationS = 0.05): RunSpec => {
    n++;
    const dir = join(root, `run${n}`);
    mkdirSync(dir);
    const config = {
      run: { run_id: `srv:${n}`, experiment_id: exp, cycle: 1, attempt: 1 },
      experiment: {
        backend: 'calibration',
        measurement: { idle_baseline_s: 0, min_window_s: 0, sample_interval_ms: 100, cross_check_threshold: 0.05 },
        extra: {},
        calibration: { matrix_size: 32, duration_s: durationS, dtype: 'float64', device: 'cpu' },
      },
    };
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
    return { runId: `srv:${n}`, experimentId: exp, cycle: 1, attempt: 1, backend: 'calibration', configPath: join(dir, 'config.json'), outDir: dir, logPath: join(dir, 'worker.log'), timeoutS: null, attemptToken: attemptToken('srv', n, 1) };
  };
  const loads = (): number => (existsSync(loadsFile) ? readFileSync(loadsFile, 'utf8').split('\n').filter(Boolean).length : 0);
  return { rt, root, loads, spec };
}

const engineOf = (s: RunSpec): Engine => (JSON.parse(readFileSync(join(s.outDir, 'result.json'), 'utf8')) as { engine: Engine }).engine;
const run = (rt: Runtime, s: RunSpec): ReturnType<Runtime['dispatch']> => rt.dispatch(s, new AbortController().signal, () => undefined);

describe('persistent worker (local runtime, fake engine)', () => {
  it('loads an engine once for runs that share it and records the reuse; a worker killed between runs is replaced', async () => {
    const { rt, loads, spec } = setup();
    const specs = [spec('exp-a'), spec('exp-a'), spec('exp-a')];
    for (const s of specs) expect(await run(rt, s)).toEqual({ exitCode: 0, timedOut: false, failureReason: null });
    expect(loads()).toBe(1);
    const engines = specs.map(engineOf);
    expect(engines.map((e) => [e.worker, e.loaded_for_run, e.reuse_count])).toEqual([['persistent', true, 0], ['persistent', false, 1], ['persistent', false, 2]]);
    expect(new Set(engines.map((e) => e.worker_pid)).size).toBe(1);

    process.kill(engines[0]!.worker_pid, 'SIGKILL'); // a crash between runs, noticed or not before the next dispatch
    const after = spec('exp-a');
    expect(await run(rt, after)).toEqual({ exitCode: 0, timedOut: false, failureReason: null });
    expect(engineOf(after)).toMatchObject({ loaded_for_run: true, reuse_count: 0 });
    expect(engineOf(after).worker_pid).not.toBe(engines[0]!.worker_pid);
    expect(loads()).toBe(2);
  }, 60_000);

  it('a fake out-of-memory failure ends only its run, typed (exit 4, failure.json), and the next run loads afresh', async () => {
    const { rt, loads, spec } = setup({ oom_on: 'exp-oom' });
    const first = spec('exp-a');
    await run(rt, first);
    const oom = spec('exp-oom');
    expect(await run(rt, oom)).toEqual({ exitCode: 4, timedOut: false, failureReason: null });
    expect(JSON.parse(readFileSync(join(oom.outDir, 'failure.json'), 'utf8'))).toMatchObject({ schema: 'lem.failure/1', kind: 'out_of_memory', exit_code: 4 });
    expect(readFileSync(oom.logPath, 'utf8')).toMatch(/out of memory/i);
    const next = spec('exp-a');
    expect((await run(rt, next)).exitCode).toBe(0);
    expect(engineOf(next).loaded_for_run).toBe(true);
    expect(engineOf(next).worker_pid).not.toBe(engineOf(first).worker_pid);
    expect(loads()).toBe(2);
  }, 60_000);

  it('a crash during a run fails that run with the reason and the next run is served by a fresh worker', async () => {
    const { rt, spec } = setup({ crash_on: 'exp-crash' });
    const crashed = await run(rt, spec('exp-crash'));
    expect(crashed.exitCode).toBeNull();
    expect(crashed.failureReason).toMatch(/persistent worker \(pid \d+\) was killed by SIGKILL/);
    expect((await run(rt, spec('exp-a'))).exitCode).toBe(0);
  }, 60_000);

  it('force_cold_start: every run gets a fresh worker and a fresh load, recorded as a cold start', async () => {
    const { rt, loads, spec } = setup({}, true);
    const specs = [spec('exp-a'), spec('exp-a')];
    for (const s of specs) expect((await run(rt, s)).exitCode).toBe(0);
    const engines = specs.map(engineOf);
    expect(engines.map((e) => [e.cold_start, e.loaded_for_run])).toEqual([[true, true], [true, true]]);
    expect(engines[0]!.worker_pid).not.toBe(engines[1]!.worker_pid);
    expect(loads()).toBe(2);
  }, 60_000);

  it('a per-run timeout kills the worker (the run times out) and the next run gets a fresh one', async () => {
    const { rt, spec } = setup();
    const first = spec('exp-a');
    await run(rt, first);
    const hung = { ...spec('exp-long', 60), timeoutS: 1 };
    expect(await run(rt, hung)).toMatchObject({ timedOut: true, failureReason: expect.stringMatching(/timed out after 1s/) });
    const next = spec('exp-a');
    expect((await run(rt, next)).exitCode).toBe(0);
    expect(engineOf(next).worker_pid).not.toBe(engineOf(first).worker_pid);
  }, 60_000);

  it('the running attempt of a persistent worker is found by its token and stopped; the run ends terminated', async () => {
    const { rt, spec } = setup();
    const long = spec('exp-long', 60);
    const outcome = run(rt, long);
    let found: Awaited<ReturnType<Runtime['findWorkers']>> = [];
    for (let i = 0; i < 200 && found.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 50));
      found = await rt.findWorkers('srv');
    }
    expect(found.map((w) => w.token)).toEqual([long.attemptToken]);
    expect((await rt.stopWorkers('srv')).map((w) => w.token)).toEqual([long.attemptToken]);
    expect(await outcome).toMatchObject({ exitCode: 143 }); // terminated: the worker answered, then exited
    expect(await rt.findWorkers('srv')).toEqual([]);
    expect((await run(rt, spec('exp-a'))).exitCode).toBe(0);
  }, 60_000);
});
