/**
 * One measurement per device at a time on the real Docker engine, through the built CLI: kill -9
 * the orchestrator at several offsets right after a run's dispatch (exec create + start is the
 * window where no handle is recorded yet), resume each time. No two result windows written under
 * the run directories (recorded or not) may overlap, every run has exactly one recorded result,
 * and no worker of the campaign is left in its (re-adopted) service container.
 *
 * The worker in the image must be this checkout's (LEM_TEST_IMAGE: build it as the README says).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { workersInContainer } from '../../src/runtime/docker/exec.js';
import { createDockerRuntime } from '../../src/runtime/docker/runtime.js';
import { campaignProjectName } from '../../src/runtime/docker/service-spec.js';
import { attemptToken, type RunSpec } from '../../src/runtime/types.js';
import { lemKillAt, RUN_STARTED } from '../helpers/cli.js';
import { containersWithLabel, docker, engine, requireEngine, runDockerTests, sleep, tempWorkspace, TEST_IMAGE, uniqueId } from './engine.js';

const ROOT = resolve(import.meta.dirname, '../..');
const projects: string[] = [];

/** Runs the CLI; kill -9s it `killAfterMs` after its first run-start progress line (null: let it end). */
function lem(args: string[], env: Record<string, string>, killAfterMs: number | null): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return lemKillAt(args, env, killAfterMs, (stderr) => RUN_STARTED.test(stderr));
}

function resultWindows(dir: string): Array<{ file: string; devices: string[]; start: number; end: number }> {
  const out: Array<{ file: string; devices: string[]; start: number; end: number }> = [];
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out.push(...resultWindows(p));
    else if (e === 'result.json') {
      const r = JSON.parse(readFileSync(p, 'utf8')) as { window: { started_at: string; ended_at: string }; device_lock: { devices: string[] } };
      out.push({ file: p, devices: r.device_lock.devices, start: Date.parse(r.window.started_at), end: Date.parse(r.window.ended_at) });
    }
  }
  return out;
}

describe.skipIf(!runDockerTests)('device lock on the docker runtime through the CLI (real engine)', () => {
  beforeAll(async () => {
    await requireEngine();
    if (!existsSync(join(ROOT, 'dist', 'src', 'cli', 'main.js'))) throw new Error('the CLI is not built: run `npm run build` first');
  });

  afterAll(async () => {
    for (const p of projects) {
      for (const c of await containersWithLabel(`lem.project=${p}`)) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
    }
  });

  it('finds a campaign\'s workers in its service containers by attempt token, and stops them (also one never given a handle)', async () => {
    const dir = tempWorkspace('lem-docker-lock-rt-');
    const project = uniqueId('lemlockrt').toLowerCase().replace(/[^a-z0-9-]/g, '');
    projects.push(project);
    writeFileSync(join(dir, 'docker-compose.yml'), `name: ${project}\nservices:\n  cpu:\n    image: ${TEST_IMAGE}\n`);
    const id = uniqueId('rt');
    // The "worker" ignores SIGTERM, so stopping it needs the SIGKILL after the grace.
    const rt = createDockerRuntime({
      engine,
      composeFiles: [join(dir, 'docker-compose.yml')],
      killGraceMs: 500,
      workerCommand: (spec) => ['sh', '-c', 'trap "" TERM; sleep 300 & wait', 'lem-fake-worker', '--attempt-token', spec.attemptToken],
    });
    const outDir = join(dir, 'runs', id, 'e', 'c1-a1');
    mkdirSync(outDir, { recursive: true });
    const spec: RunSpec = {
      runId: `${id}:0`,
      experimentId: 'e',
      cycle: 1,
      attempt: 1,
      backend: 'calibration',
      configPath: join(outDir, 'config.json'),
      outDir,
      logPath: join(outDir, 'worker.log'),
      timeoutS: null,
      attemptToken: attemptToken(id, 0, 1),
    };
    try {
      await rt.prepare(['calibration'], { campaignId: id, workspaceRoot: dir, forceColdStart: false });
      const running = rt.dispatch(spec, new AbortController().signal, () => undefined);
      let found = await rt.findWorkers(id);
      for (let i = 0; i < 100 && found.length === 0; i++) {
        await sleep(100);
        found = await rt.findWorkers(id);
      }
      expect(found.map((w) => w.token)).toEqual([attemptToken(id, 0, 1)]);
      expect(found[0]?.where).toMatch(new RegExp(`^pid \\d+ in ${campaignProjectName(project, id)}-cpu-\\d+$`));
      // A fresh runtime (as after a kill -9 of lem) finds and stops it through the container's labels alone.
      const other = createDockerRuntime({ engine, composeFiles: [join(dir, 'docker-compose.yml')], killGraceMs: 500 });
      expect((await other.stopWorkers(id)).map((w) => w.token)).toEqual([attemptToken(id, 0, 1)]);
      const outcome = await running;
      expect(outcome.exitCode).toBe(137);
      expect(await rt.findWorkers(id)).toEqual([]);
      expect(await other.findWorkers(`${id}x`)).toEqual([]);
    } finally {
      await rt.shutdown({ keepServices: false });
    }
  }, 180_000);

  it('kill -9 right after dispatch, resume, repeat: no two measured windows overlap, one recorded result per run', async () => {
    const dir = tempWorkspace('lem-docker-lock-');
    const project = uniqueId('lemlock').toLowerCase().replace(/[^a-z0-9-]/g, '');
    projects.push(project);
    writeFileSync(join(dir, 'docker-compose.yml'), `name: ${project}\nservices:\n  cpu:\n    image: ${TEST_IMAGE}\n`);
    const campaignFile = join(dir, 'campaign.yaml');
    writeFileSync(
      campaignFile,
      `campaign_name: docklock
base_config:
  backend: calibration
  measurement: { idle_baseline_s: 0.3, min_window_s: 0 }
  calibration: { duration_s: 4 }
vary:
  calibration.matrix_size: [32, 48]
cycles: 2
thermal_gap: 0
runtime: docker
retries: 0
`,
    );
    const state = join(dir, 'state');
    const env = { LEM_COMPOSE_FILE: join(dir, 'docker-compose.yml') };
    const offsets = [0, 20, 60, 150];

    const first = await lem(['--state', state, 'campaign', 'run', campaignFile], env, offsets[0] as number);
    expect(first.code, first.stderr).toBeNull(); // killed
    const id = /campaign (docklock-\S+):/.exec(first.stderr)?.[1] as string;
    expect(id).toBeDefined();
    for (const offset of offsets.slice(1)) {
      const r = await lem(['--state', state, 'campaign', 'resume', id], env, offset);
      expect(r.code, r.stderr).toBeNull();
    }
    const final = await lem(['--state', state, 'campaign', 'resume', id], env, null);
    expect(final.code, final.stderr).toBe(0);
    expect(final.stdout).toMatch(/completed — 4 succeeded/);

    const db = new Database(join(state, 'lem.db'), { readonly: true });
    const runs = db.prepare('SELECT position, status FROM runs WHERE campaign_id = ?').all(id) as Array<{ position: number; status: string }>;
    const events = db.prepare('SELECT position, kind FROM events WHERE campaign_id = ? ORDER BY seq').all(id) as Array<{ position: number | null; kind: string }>;
    db.close();
    expect(events.some((e) => ['run_interrupted', 'run_recovered', 'workers_stopped'].includes(e.kind))).toBe(true);
    // At least one kill landed in the window this is about: the attempt started, its handle was never recorded.
    const raw = new Database(join(state, 'lem.db'), { readonly: true });
    const attempts = raw.prepare("SELECT position, kind, json_extract(detail_json, '$.attempt') AS attempt FROM events WHERE campaign_id = ? AND kind IN ('run_started', 'run_dispatched')").all(id) as Array<{ position: number; kind: string; attempt: number }>;
    raw.close();
    const dispatched = new Set(attempts.filter((a) => a.kind === 'run_dispatched').map((a) => `${a.position}/${a.attempt}`));
    expect(attempts.filter((a) => a.kind === 'run_started' && !dispatched.has(`${a.position}/${a.attempt}`)).length).toBeGreaterThan(0);
    expect(runs).toHaveLength(4);
    for (const run of runs) {
      expect(run.status).toBe('succeeded');
      expect(events.filter((e) => e.position === run.position && (e.kind === 'run_succeeded' || e.kind === 'run_recovered'))).toHaveLength(1);
    }

    const windows = resultWindows(join(state, 'runs'));
    expect(windows.length).toBeGreaterThanOrEqual(4);
    const overlapping: string[] = [];
    for (const [i, a] of windows.entries()) {
      for (const b of windows.slice(i + 1)) {
        if (a.devices.some((d) => b.devices.includes(d)) && a.start < b.end && b.start < a.end) overlapping.push(`${a.file} <> ${b.file}`);
      }
    }
    expect(overlapping).toEqual([]);

    // The services were removed at the end; nothing of this campaign runs anywhere.
    for (const c of await containersWithLabel(`lem.campaign=${id}`, false)) {
      expect((await workersInContainer(docker, c.Id, `lem-${id}-p`, 'find', 1)).workers).toEqual([]);
    }
    expect(await containersWithLabel(`lem.campaign=${id}`)).toEqual([]);
  }, 300_000);
});
