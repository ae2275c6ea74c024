/**
 * End to end: calibration campaigns with `runtime: docker` through the built CLI (`npm run build`
 * first), checked through the engine's own event stream and inspect: each needed service starts
 * exactly once, every run is an exec into it, services are removed at the end, a killed container
 * fails its run while the campaign goes on, a timeout kills the exec'd process, and after kill -9
 * of the orchestrator `lem campaign resume` re-adopts the still-running service.
 *
 * Each test uses its own base compose project (LEM_COMPOSE_FILE; label lem.project), so it sees only its own
 * containers (each campaign is a compose project of its own below that base).
 */
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execCapture } from '../../src/runtime/docker/exec.js';
import { lemAsync as lem, ROOT, type CliResult as CliRun } from '../helpers/cli.js';
import { containersWithLabel, docker, requireEngine, runDockerTests, sleep, tempWorkspace, TEST_IMAGE, uniqueId } from './engine.js';

const projects: string[] = [];

interface EngineEvent {
  Type: string;
  Action: string;
  Actor: { ID: string; Attributes: Record<string, string> };
}

/** Records the engine's container events for one compose project until stopped. */
async function recordEvents(project: string): Promise<{ events: EngineEvent[]; stop: () => Promise<EngineEvent[]> }> {
  const events: EngineEvent[] = [];
  const stream = (await docker.getEvents({ filters: { type: ['container'], label: [`lem.project=${project}`] } })) as NodeJS.ReadableStream & { destroy(): void };
  let buf = '';
  stream.on('data', (d: Buffer) => {
    buf += d.toString('utf8');
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line) events.push(JSON.parse(line) as EngineEvent);
    }
  });
  return {
    events,
    stop: async () => {
      await sleep(300); // let the last events arrive
      stream.destroy();
      return events;
    },
  };
}

/**
 * These tests watch the per-run exec path (one `docker exec` of `lem_worker run` per run, its pid in
 * the handle); the persistent worker's own docker tests are in persistent-worker.test.ts and the kill storm.
 */
const PER_RUN = { LEM_WORKER: 'per_run' };
const count = (events: EngineEvent[], pred: (e: EngineEvent) => boolean): number => events.filter(pred).length;
const isWorkerExec = (e: EngineEvent): boolean => e.Action.startsWith('exec_start:') && e.Action.includes('lem_worker run');

function runsOf(state: string, campaignId: string): { position: number; status: string; error: string | null; handle: string | null }[] {
  const db = new Database(join(state, 'lem.db'), { readonly: true });
  try {
    return db.prepare('SELECT position, status, error, handle FROM runs WHERE campaign_id = ? ORDER BY position').all(campaignId) as {
      position: number;
      status: string;
      error: string | null;
      handle: string | null;
    }[];
  } finally {
    db.close();
  }
}

describe.skipIf(!runDockerTests)('campaigns on the docker runtime through the CLI (real engine)', () => {
  beforeAll(async () => {
    await requireEngine();
    if (!existsSync(join(ROOT, 'dist', 'src', 'cli', 'main.js'))) throw new Error('the CLI is not built: run `npm run build` first');
  });

  afterAll(async () => {
    for (const p of projects) {
      for (const c of await containersWithLabel(`lem.project=${p}`)) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
    }
  });

  /** A workspace with its own compose project and a campaign file. */
  function setup(campaign: string): { dir: string; state: string; project: string; env: Record<string, string>; campaignFile: string } {
    const dir = tempWorkspace('lem-docker-e2e-');
    const project = uniqueId('leme2e').toLowerCase().replace(/[^a-z0-9-]/g, '');
    projects.push(project);
    const composeFile = join(dir, 'docker-compose.yml');
    writeFileSync(composeFile, `name: ${project}\nservices:\n  cpu:\n    image: ${TEST_IMAGE}\n`);
    const campaignFile = join(dir, 'campaign.yaml');
    writeFileSync(campaignFile, campaign);
    return { dir, state: join(dir, 'state'), project, env: { LEM_COMPOSE_FILE: composeFile, ...PER_RUN }, campaignFile };
  }

  const MEASURE = 'measurement: { idle_baseline_s: 0, min_window_s: 0 }';

  /**
   * A 3-run calibration campaign (no retries) during which, 0.7 s after the first run starts, `act`
   * is done to the service container; fails the test when it never got to act.
   */
  async function disruptServiceMidRun(name: string, act: (c: Docker.Container) => Promise<unknown>): Promise<{ s: ReturnType<typeof setup>; r: CliRun; events: EngineEvent[] }> {
    const s = setup(`campaign_name: ${name}
base_config:
  backend: calibration
  ${MEASURE}
  calibration: { duration_s: 2, matrix_size: 32 }
cycles: 3
thermal_gap: 0
runtime: docker
retries: 0
`);
    const rec = await recordEvents(s.project);
    let acted = false;
    const r = await lem(['--state', s.state, 'campaign', 'run', s.campaignFile], s.env, (all) => {
      if (!acted && /^\[1\/3\]/m.test(all)) {
        acted = true;
        void (async () => {
          await sleep(700);
          const [c] = await containersWithLabel(`lem.project=${s.project}`, false);
          if (c) await act(docker.getContainer(c.Id));
        })();
      }
    });
    const events = await rec.stop();
    expect(acted).toBe(true);
    return { s, r, events };
  }

  it('runs a calibration campaign: one service started once, every run an exec, removed at the end', async () => {
    const s = setup(`campaign_name: dock
base_config:
  backend: calibration
  ${MEASURE}
  calibration: { duration_s: 0.3 }
vary:
  calibration.matrix_size: [32, 64]
cycles: 3
thermal_gap: 0
runtime: docker
retries: 0
`);
    const rec = await recordEvents(s.project);
    const r = await lem(['--state', s.state, 'campaign', 'run', s.campaignFile], s.env);
    const events = await rec.stop();
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/completed — 6 succeeded/);

    expect(count(events, (e) => e.Action === 'create')).toBe(1);
    expect(count(events, (e) => e.Action === 'start')).toBe(1);
    expect(events.find((e) => e.Action === 'create')?.Actor.Attributes['com.docker.compose.service']).toBe('cpu');
    expect(count(events, isWorkerExec)).toBe(6);
    const containerIds = new Set(events.map((e) => e.Actor.ID));
    expect(containerIds.size).toBe(1);
    expect(count(events, (e) => e.Action === 'destroy')).toBe(1);
    expect(await containersWithLabel(`lem.project=${s.project}`)).toEqual([]);
    // Handles recorded in the manifest name that container.
    const id = /campaign (dock-\S+):/.exec(r.stderr)?.[1] ?? '';
    for (const run of runsOf(s.state, id)) {
      expect(run.status).toBe('succeeded');
      expect(run.handle).toMatch(new RegExp(`^docker:${[...containerIds][0]}:\\d+:\\d+$`));
    }
    // Every run file (config.json by lem, worker.log by lem, result.json by the worker) has one mode.
    const modes = new Set<number>();
    let files = 0;
    for (const exp of readdirSync(join(s.state, 'runs', id), { withFileTypes: true }).filter((d) => d.isDirectory())) {
      for (const attempt of readdirSync(join(s.state, 'runs', id, exp.name))) {
        for (const f of ['config.json', 'worker.log', 'result.json']) {
          modes.add(statSync(join(s.state, 'runs', id, exp.name, attempt, f)).mode & 0o777);
          files++;
        }
      }
    }
    expect(files).toBe(18);
    expect([...modes]).toEqual([0o644]);
  });

  it('a docker kill of the service mid-run fails that run with the reason; the campaign continues', async () => {
    const { s, r, events } = await disruptServiceMidRun('dockkill', (c) => c.kill());
    expect(r.code).toBe(1); // one failed run
    const id = /campaign (dockkill-\S+):/.exec(r.stderr)?.[1] ?? '';
    const runs = runsOf(s.state, id);
    expect(runs.map((x) => x.status)).toEqual(['failed', 'succeeded', 'succeeded']);
    expect(runs[0]?.error).toMatch(/the cpu service container \(.+\) stopped during the run: exit code 137/);
    // The same container was started again (not a second one), then removed.
    expect(count(events, (e) => e.Action === 'create')).toBe(1);
    expect(count(events, (e) => e.Action === 'start')).toBe(2);
    expect(count(events, isWorkerExec)).toBe(3);
    expect(await containersWithLabel(`lem.project=${s.project}`)).toEqual([]);
  });

  it('a run past its timeout_s is failed and its exec\'d process killed inside the container', async () => {
    const s = setup(`campaign_name: docktimeout
configs:
  - backend: calibration
    name: slow
    measurement: { idle_baseline_s: 0, min_window_s: 0, timeout_s: 1 }
    calibration: { duration_s: 60, matrix_size: 32 }
  - backend: calibration
    name: quick
    ${MEASURE}
    calibration: { duration_s: 0.3, matrix_size: 32 }
cycles: 1
structure: grouped
thermal_gap: 0
runtime: docker
retries: 0
keep_services: true
`);
    // No timing assertion (a loaded host makes them flaky): the slow run would take 60 s and succeed
    // if the timeout did not fire; below, it must be failed as timed out and its process gone.
    const r = await lem(['--state', s.state, 'campaign', 'run', s.campaignFile], s.env);
    expect(r.code).toBe(1);
    const id = /campaign (docktimeout-\S+):/.exec(r.stderr)?.[1] ?? '';
    const runs = runsOf(s.state, id);
    const failed = runs.filter((x) => x.status === 'failed');
    expect(failed).toHaveLength(1);
    expect(failed[0]?.error).toMatch(/timed out after 1s/);
    expect(runs.filter((x) => x.status === 'succeeded')).toHaveLength(1);
    // keep_services left the service up: no worker process is left inside it.
    const [c] = await containersWithLabel(`lem.project=${s.project}`, false);
    expect(c).toBeDefined();
    const ps = await execCapture(docker, c?.Id ?? '', ['ps', '-eo', 'pid,args']);
    expect(ps.stdout).not.toContain('lem_worker run');
    const pid = /^docker:[0-9a-f]+:(\d+):/.exec(failed[0]?.handle ?? '')?.[1];
    expect(pid).toBeDefined();
    expect(ps.stdout.split('\n').some((l) => l.trim().split(/\s+/)[0] === pid)).toBe(false);
  });

  it('kill -9 of the orchestrator, then resume: the running service is re-adopted, the orphan stopped', async () => {
    const s = setup(`campaign_name: dockresume
base_config:
  backend: calibration
  ${MEASURE}
  calibration: { duration_s: 1.5, matrix_size: 32 }
cycles: 3
thermal_gap: 0
runtime: docker
retries: 0
`);
    const rec = await recordEvents(s.project);
    let sent = false;
    const first = await lem(['--state', s.state, 'campaign', 'run', s.campaignFile], s.env, (all, kill) => {
      if (!sent && /^\[2\/3\]/m.test(all)) {
        sent = true;
        // Kill once the in-flight run's handle is recorded (a loaded machine can take a while).
        const cid = /campaign (dockresume-\S+):/.exec(all)?.[1] ?? '';
        void (async () => {
          for (let i = 0; i < 100 && !runsOf(s.state, cid).some((x) => x.status === 'running' && x.handle); i++) await sleep(50);
          kill('SIGKILL');
        })();
      }
    });
    expect(first.code).toBeNull(); // killed
    const id = /campaign (dockresume-\S+):/.exec(first.stderr)?.[1] ?? '';
    // The service outlived the orchestrator, with the orphaned worker still inside.
    const [svc] = await containersWithLabel(`lem.project=${s.project}`, false);
    expect(svc?.Labels['lem.campaign']).toBe(id);
    const before = await execCapture(docker, svc?.Id ?? '', ['ps', '-eo', 'args']);
    expect(before.stdout).toContain('lem_worker run');

    const resumed = await lem(['--state', s.state, 'campaign', 'resume', id], s.env);
    const events = await rec.stop();
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stdout).toMatch(/completed — 3 succeeded/);
    // One container over both sessions: created and started once, re-adopted by the resume.
    expect(count(events, (e) => e.Action === 'create')).toBe(1);
    expect(count(events, (e) => e.Action === 'start')).toBe(1);
    expect(new Set(events.map((e) => e.Actor.ID))).toEqual(new Set([svc?.Id]));
    // The resume reaped the orphan (a kill exec). If the orphan had finished its run before the
    // reap, its result was kept (run_recovered) and nothing was re-run; otherwise the interrupted
    // run was run again. Either way every run executed exactly once more than it was recovered.
    expect(count(events, (e) => e.Action.startsWith('exec_start:') && e.Action.includes('import os, sys, time'))).toBeGreaterThanOrEqual(1);
    const db = new Database(join(s.state, 'lem.db'), { readonly: true });
    const recovered = (db.prepare("SELECT count(*) AS n FROM events WHERE campaign_id = ? AND kind = 'run_recovered'").get(id) as { n: number }).n;
    const interrupted = (db.prepare("SELECT count(*) AS n FROM events WHERE campaign_id = ? AND kind = 'run_interrupted'").get(id) as { n: number }).n;
    db.close();
    expect(recovered + interrupted).toBe(1);
    expect(count(events, isWorkerExec)).toBe(recovered === 1 ? 3 : 4);
    expect(await containersWithLabel(`lem.project=${s.project}`)).toEqual([]);
  });
  it('kill -9 during the last run, then a resume that only recovers it: no container is left', async () => {
    const s = setup(`campaign_name: docklast
base_config:
  backend: calibration
  ${MEASURE}
  calibration: { duration_s: 1, matrix_size: 32 }
cycles: 1
thermal_gap: 0
runtime: docker
retries: 0
`);
    let sent = false;
    const first = await lem(['--state', s.state, 'campaign', 'run', s.campaignFile], s.env, (all, kill) => {
      if (!sent && /^\[1\/1\]/m.test(all)) {
        sent = true;
        setTimeout(() => kill('SIGKILL'), 300);
      }
    });
    expect(first.code).toBeNull();
    const id = /campaign (docklast-\S+):/.exec(first.stderr)?.[1] ?? '';
    // The orphaned worker finishes its run inside the surviving service.
    const resultFile = (): string | undefined => {
      const root = join(s.state, 'runs', id);
      for (const exp of existsSync(root) ? readdirSync(root) : []) {
        const f = join(root, exp, 'c1-a1', 'result.json');
        if (existsSync(f)) return f;
      }
      return undefined;
    };
    for (let i = 0; i < 150 && !resultFile(); i++) await sleep(100);
    expect(resultFile()).toBeDefined();
    expect(await containersWithLabel(`lem.campaign=${id}`)).toHaveLength(1);

    const resumed = await lem(['--state', s.state, 'campaign', 'resume', id], s.env);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toMatch(/recovered 1 run/);
    expect(resumed.stdout).toMatch(/completed — 1 succeeded/);
    expect(await containersWithLabel(`lem.campaign=${id}`)).toEqual([]);
    // A resume with nothing to run at all also leaves nothing behind.
    const again = await lem(['--state', s.state, 'campaign', 'resume', id], s.env);
    expect(again.code, again.stderr).toBe(0);
    expect(await containersWithLabel(`lem.campaign=${id}`)).toEqual([]);
  });

  it('docker rm -f of the service mid-run: that run fails, the service is recreated and the campaign completes the rest', async () => {
    const { s, r, events } = await disruptServiceMidRun('dockrm', (c) => c.remove({ force: true }));
    expect(r.code, r.stderr).toBe(1); // one failed run, not three
    const id = /campaign (dockrm-\S+):/.exec(r.stderr)?.[1] ?? '';
    const runs = runsOf(s.state, id);
    expect(runs.map((x) => x.status)).toEqual(['failed', 'succeeded', 'succeeded']);
    expect(runs[0]?.error).toMatch(/cpu service container .* (was removed|stopped) during the run/);
    expect(r.stderr).toMatch(/recreation 1 of at most 3/);
    expect(count(events, (e) => e.Action === 'create')).toBe(2);
    expect(await containersWithLabel(`lem.project=${s.project}`)).toEqual([]);
  });
});
