/**
 * `runtime: slurm` when things go wrong, on a real single-node test cluster (fake GPUs): a kill -9
 * of lem leaves its allocation and step behind and a resume adopts the one and cancels the other;
 * Ctrl-C cancels the step (scancel's SIGTERM reaches the worker) and releases the allocation; an
 * allocation that disappears (time limit, scancel by someone else) stops the campaign with a clear
 * message, and a resume asks for a new one.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jobsNamed, liveSteps, runSlurmTests, slurm, startCluster, stopCluster, type Cluster } from './cluster.js';
import { attemptLogs, attempts, campaign, idOf, lem, manifest, sleep } from './harness.js';

let cluster: Cluster;

describe.skipIf(!runSlurmTests)('runtime: slurm recovery on a single-node test cluster (fake GPUs)', () => {
  beforeAll(() => {
    cluster = startCluster(4);
  });
  afterAll(async () => {
    if (cluster) await stopCluster(cluster);
  });

  it('kill -9 of lem leaves the allocation and the step; resume adopts the allocation, cancels the orphan step and finishes', async () => {
    const c = campaign('slurmkill', `base_config:
  backend: calibration
  measurement: { idle_baseline_s: 0, min_window_s: 0 }
  calibration: { duration_s: 4, matrix_size: 32 }
cycles: 2
`);
    let sent = false;
    const first = await lem(cluster, ['--state', c.state, 'campaign', 'run', c.file], {}, (all, kill) => {
      if (sent || !/^\[1\/2\]/m.test(all)) return;
      sent = true;
      void (async () => {
        // Kill once the run in flight has its step listed (its 4 s burn leaves time to see the orphan).
        for (let i = 0; i < 600 && !liveSteps(cluster).some((s) => /\|lem-slurmkill-/.test(s)); i++) await sleep(50);
        kill('SIGKILL');
      })();
    });
    expect(first.code).toBe(null); // killed
    const id = idOf(first.stderr, 'slurmkill');
    const job = /allocation (\d+) granted/.exec(first.stderr)?.[1] ?? '';
    expect(jobsNamed(cluster, `lem-${id}`)).toEqual([`${job}|RUNNING`]);
    const orphan = liveSteps(cluster).find((s) => s.includes(`|lem-${id}-p`));
    expect(orphan).toBeDefined();

    const r = await lem(cluster, ['--state', c.state, 'campaign', 'resume', id]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`adopted allocation ${job} (lem-${id})`);
    expect(r.stderr).toContain(`stopped 1 worker(s) left running by an earlier session: ${orphan?.split('|')[1]} (Slurm step ${orphan?.split('|')[0]}`);
    const { runs, events } = manifest(c.state);
    expect(runs.map((x) => x.status)).toEqual(['succeeded', 'succeeded']);
    for (const run of runs) expect(events.filter((e) => e.position === run.position && (e.kind === 'run_succeeded' || e.kind === 'run_recovered'))).toHaveLength(1);
    expect(events.some((e) => e.kind === 'run_interrupted')).toBe(true);
    // Every recorded result ran in the one allocation.
    expect(new Set(attempts(c.state, id).filter((a) => a.files.includes('result.json')).map((a) => a.placement.env['SLURM_JOB_ID']))).toEqual(new Set([job]));
    expect(jobsNamed(cluster, `lem-${id}`)).toEqual([]);
    expect(liveSteps(cluster)).toEqual([]);
  });

  it('Ctrl-C cancels the step and releases the allocation', async () => {
    const c = campaign('slurmint', `base_config:
  backend: calibration
  measurement: { idle_baseline_s: 0, min_window_s: 0 }
  calibration: { duration_s: 30, matrix_size: 32 }
cycles: 2
`);
    let sent = false;
    const r = await lem(cluster, ['--state', c.state, 'campaign', 'run', c.file], {}, (all, kill) => {
      if (sent || !/^\[1\/2\]/m.test(all)) return;
      sent = true;
      void (async () => {
        // Once the worker in the step is burning (its signal handlers are installed by then).
        const id = idOf(all, 'slurmint');
        const burning = (): boolean => attemptLogs(c.state, id).some((log) => log.includes('calibration: '));
        for (let i = 0; i < 600 && !burning(); i++) await sleep(50);
        kill('SIGINT');
      })();
    });
    expect(r.code, r.stderr).toBe(130);
    const id = idOf(r.stderr, 'slurmint');
    const { runs } = manifest(c.state);
    expect(runs.map((x) => x.status).sort()).toEqual(['interrupted', 'pending']);
    // scancel --signal=TERM reached the worker in the step, and srun passed its exit code (143) on.
    const stopped = runs.find((x) => x.status === 'interrupted');
    expect(stopped?.exit_code).toBe(143);
    const [dir] = attempts(c.state, id);
    expect(readFileSync(join(dir?.dir ?? '', 'worker.log'), 'utf8')).toMatch(/terminated: received signal SIGTERM/);
    expect(r.stderr).toMatch(new RegExp(`released allocation \\d+ \\(lem-${id}\\)`));
    expect(jobsNamed(cluster, `lem-${id}`)).toEqual([]);
    expect(liveSteps(cluster)).toEqual([]);
  });

  it('an allocation that disappears mid-run stops the campaign with the reason; resume asks for a new one and finishes', async () => {
    const c = campaign('slurmlost', `base_config:
  backend: calibration
  measurement: { idle_baseline_s: 0, min_window_s: 0 }
  calibration: { duration_s: 4, matrix_size: 32 }
cycles: 2
`);
    let job = '';
    const first = await lem(cluster, ['--state', c.state, 'campaign', 'run', c.file], {}, (all) => {
      if (job || !/^\[1\/2\]/m.test(all)) return;
      job = /allocation (\d+) granted/.exec(all)?.[1] ?? '';
      void (async () => {
        for (let i = 0; i < 600 && !liveSteps(cluster).some((s) => /\|lem-slurmlost-/.test(s)); i++) await sleep(50);
        slurm(cluster, 'scancel', [job]); // as a time limit or an administrator would
      })();
    });
    expect(first.code, first.stderr).toBe(1);
    const id = idOf(first.stderr, 'slurmlost');
    const gone = `runtime slurm: allocation ${job} (lem-${id}) is gone (its time limit, or scancel outside lem) and this run failed with it; resume the campaign to ask for a new allocation.`;
    expect(first.stderr).toContain(gone);
    expect(manifest(c.state).runs.map((r) => r.status).sort()).toEqual(['failed', 'pending']);
    expect(manifest(c.state).runs.find((r) => r.status === 'failed')?.error).toBe(gone);

    const r = await lem(cluster, ['--state', c.state, 'campaign', 'resume', id]);
    expect(r.code, r.stderr).toBe(0);
    const second = /allocation (\d+) granted/.exec(r.stderr)?.[1];
    expect(second).toBeDefined();
    expect(second).not.toBe(job);
    expect(manifest(c.state).runs.map((x) => x.status)).toEqual(['succeeded', 'succeeded']);
    expect(jobsNamed(cluster, `lem-${id}`)).toEqual([]);
  });
});
