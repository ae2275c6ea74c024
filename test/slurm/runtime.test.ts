/**
 * `runtime: slurm` end to end, on a real single-node Slurm cluster (test/slurm/cluster.ts) with 4
 * fake GPUs (device nodes, no GPU behind them: the worker runs the calibration backend bare through
 * srun). Checked through Slurm itself (squeue) and the manifest: one allocation per campaign, each
 * run a step of it on its own GPUs, results over stdout, two campaigns on disjoint GPUs, exit codes
 * and timeouts through srun. Crashes and interrupts: recovery.test.ts.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/cli.js';
import { jobsNamed, liveSteps, runSlurmTests, slurmMissing, startCluster, stopCluster, type Cluster } from './cluster.js';
import { attempts, campaign, idOf, lem, manifest, sleep } from './harness.js';

if (!runSlurmTests) console.warn(`test/slurm: skipped — ${slurmMissing ?? ''}`);

let cluster: Cluster;

describe.skipIf(!runSlurmTests)('runtime: slurm on a single-node test cluster (fake GPUs)', () => {
  beforeAll(() => {
    cluster = startCluster(4);
  });
  afterAll(async () => {
    if (cluster) await stopCluster(cluster);
  });

  it('runs every run once as a step of one allocation; results come back over stdout; GPU windows are disjoint; the allocation is released', async () => {
    const c = campaign('slurmok', `base_config:
  backend: calibration
  measurement: { idle_baseline_s: 0, min_window_s: 0 }
  calibration: { duration_s: 0.3 }
vary:
  calibration.matrix_size: [32, 64]
cycles: 3
`);
    const r = await lem(cluster, ['--state', c.state, 'campaign', 'run', c.file]);
    expect(r.code, r.stderr).toBe(0);
    const id = idOf(r.stderr, 'slurmok');
    const job = /allocation (\d+) granted \(lem-slurmok-/.exec(r.stderr)?.[1];
    expect(job).toBeDefined();
    const { runs, events } = manifest(c.state);
    expect(runs).toHaveLength(6);
    for (const run of runs) {
      expect(run.status).toBe('succeeded');
      expect(events.filter((e) => e.position === run.position && e.kind === 'run_succeeded')).toHaveLength(1);
      expect(run.handle).toMatch(new RegExp(`^slurm:${job}:lem-${id}-p${run.position}-a1$`));
    }
    const all = attempts(c.state, id);
    expect(all).toHaveLength(6);
    for (const a of all) {
      // The worker wrote into a temporary directory on the node; the files here came over srun's stdout.
      expect(a.files).toEqual(['config.json', 'placement.json', 'result.json', 'worker.log']);
      expect(readFileSync(join(a.dir, 'worker.log'), 'utf8')).toMatch(/wrote \/tmp\/lem-run-\S+\/out\/result\.json/);
      expect(readFileSync(join(a.dir, 'worker.log'), 'utf8')).not.toContain('@@lem-frame');
      expect(a.placement.env['SLURM_JOB_ID']).toBe(job);
      expect(a.placement.env['SLURM_STEP_GPUS']).toMatch(/^[0-3]$/); // one of the 4 fake GPUs, by Slurm's GRES
      expect(a.window).not.toBeNull();
    }
    expect(new Set(all.map((a) => a.placement.env['SLURM_STEP_ID'])).size).toBe(6); // one step per run
    // Per fake GPU, the measured windows never overlap.
    const byGpu = new Map<string, Array<[string, string]>>();
    for (const a of all) byGpu.set(a.placement.env['SLURM_STEP_GPUS'] ?? '', [...(byGpu.get(a.placement.env['SLURM_STEP_GPUS'] ?? '') ?? []), [a.window?.started_at ?? '', a.window?.ended_at ?? '']]);
    for (const windows of byGpu.values()) {
      windows.sort((x, y) => Date.parse(x[0]) - Date.parse(y[0]));
      for (let i = 1; i < windows.length; i++) expect(Date.parse(windows[i]?.[0] ?? '')).toBeGreaterThanOrEqual(Date.parse(windows[i - 1]?.[1] ?? ''));
    }
    expect(r.stderr).toContain(`released allocation ${job} (lem-${id})`);
    expect(jobsNamed(cluster, `lem-${id}`)).toEqual([]);
    expect(liveSteps(cluster)).toEqual([]);
  });

  it('two campaigns at once hold two allocations: their steps get disjoint fake GPUs, and windows on each GPU never overlap', async () => {
    const body = `base_config:
  backend: calibration
  measurement: { idle_baseline_s: 0, min_window_s: 0 }
  calibration: { duration_s: 1, matrix_size: 32 }
cycles: 2
`;
    const [a, b] = [campaign('slurmpa', body), campaign('slurmpb', body)].map((c) => {
      writeFileSync(c.file, readFileSync(c.file, 'utf8').replace('gres: "gpu:4"', 'gres: "gpu:2"'));
      return c;
    }) as [{ state: string; file: string }, { state: string; file: string }];
    // Each campaign its own device-lock directory: on fake GPUs the worker locks `cpu`, which would serialise them.
    const [ra, rb] = await Promise.all([
      lem(cluster, ['--state', a.state, 'campaign', 'run', a.file], { LEM_LOCK_DIR: tempDir('lem-slurm-locks-') }),
      lem(cluster, ['--state', b.state, 'campaign', 'run', b.file], { LEM_LOCK_DIR: tempDir('lem-slurm-locks-') }),
    ]);
    expect(ra.code, ra.stderr).toBe(0);
    expect(rb.code, rb.stderr).toBe(0);
    const runsA = attempts(a.state, idOf(ra.stderr, 'slurmpa'));
    const runsB = attempts(b.state, idOf(rb.stderr, 'slurmpb'));
    const gpusOf = (xs: typeof runsA): Set<string> => new Set(xs.flatMap((x) => (x.placement.env['SLURM_STEP_GPUS'] ?? '').split(',')));
    expect(runsA[0]?.placement.env['SLURM_JOB_ID']).not.toBe(runsB[0]?.placement.env['SLURM_JOB_ID']);
    expect([...gpusOf(runsA)].filter((g) => gpusOf(runsB).has(g))).toEqual([]);
    const windows = [...runsA, ...runsB].map((x) => ({ gpu: x.placement.env['SLURM_STEP_GPUS'] ?? '', job: x.placement.env['SLURM_JOB_ID'], t0: Date.parse(x.window?.started_at ?? ''), t1: Date.parse(x.window?.ended_at ?? '') }));
    const overlap = (p: (typeof windows)[number], q: (typeof windows)[number]): boolean => p.t0 < q.t1 && q.t0 < p.t1;
    const pairs = windows.flatMap((p, i) => windows.slice(i + 1).map((q) => [p, q] as const));
    expect(pairs.filter(([p, q]) => p.gpu === q.gpu && overlap(p, q))).toEqual([]);
    // The two campaigns really measured at the same time (else the check above proves nothing).
    expect(pairs.some(([p, q]) => p.job !== q.job && overlap(p, q))).toBe(true);
  });

  it('login: ssh:// sends every Slurm command through ssh as one quoted command line (a fake ssh that runs it here)', async () => {
    const c = campaign('slurmssh', `configs:
  - backend: calibration
    measurement: { idle_baseline_s: 0, min_window_s: 0 }
    calibration: { duration_s: 0.3, matrix_size: 32 }
cycles: 2
`);
    writeFileSync(c.file, readFileSync(c.file, 'utf8').replace('slurm:\n', 'slurm:\n  login: ssh://lab@login01:2222\n'));
    // The fake ssh: records its arguments, then runs the remote command line with sh, on this host.
    const bin = tempDir('lem-fake-ssh-');
    const record = join(bin, 'calls.log');
    writeFileSync(join(bin, 'ssh'), '#!/bin/sh\nprintf "%s\\n" "$*" >> "$FAKE_SSH_LOG"\nwhile [ $# -gt 0 ] && [ "$1" != "--" ]; do shift; done\nshift\nexec sh -c "$*"\n', { mode: 0o755 });
    const r = await lem(cluster, ['--state', c.state, 'campaign', 'run', c.file], { PATH: `${bin}:${process.env['PATH'] ?? ''}`, FAKE_SSH_LOG: record });
    // squeue's --format=%i|%T reaches squeue intact only when quoted (a bare | would be a pipe).
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('on ssh://lab@login01:2222');
    const calls = readFileSync(record, 'utf8').trim().split('\n');
    for (const call of calls) expect(call).toMatch(/^-o BatchMode=yes -T -p 2222 lab@login01 -- /);
    const commands = new Set(calls.map((l) => l.split(' -- ')[1]?.split(' ')[0]));
    expect([...commands].sort()).toEqual(['salloc', 'scancel', 'squeue', 'srun']);
    expect(calls.filter((l) => / -- srun /.test(l))).toHaveLength(2);
    expect(manifest(c.state).runs.map((x) => x.status)).toEqual(['succeeded', 'succeeded']);
    expect(jobsNamed(cluster, `lem-${idOf(r.stderr, 'slurmssh')}`)).toEqual([]);
  });

  it('thermal gaps read the GPUs through a short step of the allocation (the fake cooling curve), then lem calibrate --runtime slurm', async () => {
    const c = campaign('slurmthermal', `configs:
  - backend: calibration
    measurement: { idle_baseline_s: 0, min_window_s: 0 }
    calibration: { duration_s: 0.2, matrix_size: 16 }
cycles: 2
`);
    writeFileSync(c.file, readFileSync(c.file, 'utf8').replace('thermal_gap: 0', 'thermal_gap: {min_s: 0.2, max_s: 60, until_temp_c: 50}'));
    // 80 → 50 °C with a 4 s time constant: about 4.4 s after the first run heats the fake GPU.
    const fake = join(tempDir('lem-slurm-thermal-'), 'fake-gpu.json');
    writeFileSync(fake, JSON.stringify({ idle_c: 35, hot_c: 80, tau_s: 4, idle_w: 70, hot_w: 300 }));
    const r = await lem(cluster, ['--state', c.state, 'campaign', 'run', c.file], { LEM_FAKE_THERMAL: fake });
    expect(r.code, r.stderr).toBe(0);
    const gaps = manifest(c.state).events.filter((e) => e.kind === 'thermal_gap').map((e) => JSON.parse(e.detail_json) as { reason: string; start_temp_c: number | null; end_temp_c: number | null });
    expect(gaps).toHaveLength(1);
    expect(gaps[0]?.reason).toBe('reached'); // not a blind wait: readings came back through srun
    expect(gaps[0]?.start_temp_c).toBeGreaterThan(50);
    expect(gaps[0]?.end_temp_c).toBeLessThanOrEqual(50);
    expect(liveSteps(cluster)).toEqual([]);
    expect(jobsNamed(cluster, `lem-${idOf(r.stderr, 'slurmthermal')}`)).toEqual([]);

    // lem calibrate on the same runtime: a short allocation (default slurm settings), one tool step, released.
    const out = join(tempDir('lem-slurm-cal-'), 'cal.json');
    writeFileSync(fake, JSON.stringify({ idle_c: 35, hot_c: 80, tau_s: 0.5, idle_w: 70, hot_w: 300 }));
    const cal = await lem(cluster, ['--state', c.state, 'calibrate', '--runtime', 'slurm', '--burn-s', '0.3', '--idle-s', '0', '--settle-max-s', '10', '--out', out], { LEM_FAKE_THERMAL: fake });
    expect(cal.code, cal.stderr).toBe(0);
    const f = JSON.parse(readFileSync(out, 'utf8')) as { runtime: string; idle_temp_c: { value: number }; time_to_idle_s: { value: number } };
    expect(f).toMatchObject({ runtime: 'slurm', idle_temp_c: { value: 35 } });
    expect(f.time_to_idle_s.value).toBeGreaterThan(0);
    const job = /allocation (\d+) granted/.exec(cal.stderr)?.[1];
    expect(cal.stderr).toContain(`released allocation ${job}`);
    expect(liveSteps(cluster)).toEqual([]);
  });

  it("passes the worker's exit code through srun, and a timeout scancels the step", async () => {
    // Exit code 75 (device lock timeout): this test holds the run's device lock while it runs.
    const locks = tempDir('lem-slurm-locks-');
    mkdirSync(locks, { recursive: true });
    const holder = spawn('flock', ['-x', join(locks, 'cpu.lock'), 'sleep', '60'], { stdio: 'ignore' });
    for (let i = 0; i < 100 && !existsSync(join(locks, 'cpu.lock')); i++) await sleep(20);
    const held = campaign('slurmcode', `configs:
  - backend: calibration
    measurement: { idle_baseline_s: 0, min_window_s: 0, device_lock_timeout_s: 0.5 }
    calibration: { duration_s: 0.3, matrix_size: 32 }
cycles: 1
`);
    const r1 = await lem(cluster, ['--state', held.state, 'campaign', 'run', held.file], { LEM_LOCK_DIR: locks });
    holder.kill('SIGKILL');
    expect(r1.code, r1.stderr).toBe(1);
    const [locked] = manifest(held.state).runs;
    expect(locked).toMatchObject({ status: 'failed', exit_code: 75 });
    expect(locked?.error).toMatch(/the worker exited with code 75/);

    const c = campaign('slurmtimeout', `configs:
  - backend: calibration
    name: slow
    measurement: { idle_baseline_s: 0, min_window_s: 0, timeout_s: 1 }
    calibration: { duration_s: 60, matrix_size: 32 }
  - backend: calibration
    name: quick
    measurement: { idle_baseline_s: 0, min_window_s: 0 }
    calibration: { duration_s: 0.3, matrix_size: 32 }
cycles: 1
structure: grouped
`);
    const r = await lem(cluster, ['--state', c.state, 'campaign', 'run', c.file]);
    expect(r.code, r.stderr).toBe(1);
    const id = idOf(r.stderr, 'slurmtimeout');
    const { runs } = manifest(c.state);
    const failed = runs.filter((x) => x.status === 'failed');
    expect(failed).toHaveLength(1);
    const job = /^slurm:(\d+):/.exec(failed[0]?.handle ?? '')?.[1];
    // lem's timer cancelled that step. (The worker's own timeout_s alarm fires a moment later, so
    // which of the two ended the process is a race; the Ctrl-C test below checks scancel's SIGTERM.)
    expect(failed[0]?.error).toMatch(new RegExp(`^timed out after 1s; step ${job}\\.\\d+ cancelled \\(scancel\\)$`));
    expect(runs.filter((x) => x.status === 'succeeded')).toHaveLength(1);
    expect(liveSteps(cluster)).toEqual([]);
    expect(jobsNamed(cluster, `lem-${id}`)).toEqual([]);
  });
});
