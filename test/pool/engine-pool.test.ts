/**
 * A pool of Docker engines (hosts:) for real: the main engine (unix://) and two extra dockerds
 * started by .ci/pool-engines.sh — one reached over SSH (OpenSSH forwarding its socket), one over
 * TCP+TLS — each with a fake GPU list (LEM_FAKE_GPUS=1: no device requests). Calibration runs,
 * 1 GPU each, through the built CLI:
 *  1. every run succeeds exactly once, remote results come back over the archive API with no bind
 *     mount on the remote engines, windows on each (host, GPU) are disjoint; a kill -9 of lem while
 *     a remote run is in flight, then a resume: the orphan's result is fetched from the host's volume;
 *  2. one engine is killed mid-run: its run is interrupted and placed again on another host.
 */
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LEM, ROOT } from '../helpers/cli.js';
import { containersWithLabel, docker, engine, requireEngine, runDockerTests, sleep, tempWorkspace, TEST_IMAGE, uniqueId } from '../docker/engine.js';

const isRoot = process.getuid?.() === 0;
const run = runDockerTests && (isRoot || Boolean(process.env['CI']));

interface PoolEnv {
  /** The test image with this checkout's worker, on all three engines. */
  image: string;
  ssh: { engine: string; identity: string; known_hosts: string; socket: string; pidfile: string };
  tls: { engine: string; ca: string; cert: string; key: string; socket: string; pidfile: string };
}

let poolDir = '';
let pool: PoolEnv;
const projects: string[] = [];

function startLem(args: string[], env: Record<string, string>): { done: Promise<{ code: number | null; stdout: string; stderr: string }>; kill: () => void } {
  const child = spawn(process.execPath, [LEM, ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => child.once('exit', (code) => resolve({ code, stdout, stderr })));
  return { done, kill: () => child.kill('SIGKILL') };
}

interface Placed {
  position: number;
  attempt: number;
  host: string;
  gpus: string;
}

/** Polls the manifest until a run placed on `host` has its worker started there (its handle recorded). */
async function waitPlacedOn(state: string, host: string, timeoutMs = 60_000): Promise<Placed> {
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    if (existsSync(join(state, 'lem.db'))) {
      const db = new Database(join(state, 'lem.db'), { readonly: true, fileMustExist: true });
      try {
        const row = db
          .prepare("SELECT position, json_extract(detail_json, '$.attempt') AS attempt, json_extract(detail_json, '$.host') AS host, json_extract(detail_json, '$.gpus') AS gpus FROM events p WHERE kind = 'placed' AND json_extract(detail_json, '$.host') = ? AND EXISTS (SELECT 1 FROM events d WHERE d.kind = 'run_dispatched' AND d.campaign_id = p.campaign_id AND d.position = p.position AND json_extract(d.detail_json, '$.attempt') = json_extract(p.detail_json, '$.attempt')) LIMIT 1")
          .get(host) as Placed | undefined;
        if (row) return row;
      } catch {
        // not created yet
      } finally {
        db.close();
      }
    }
    await sleep(100);
  }
  throw new Error(`no run was placed on ${host} within ${timeoutMs} ms`);
}

function campaignYaml(name: string, cycles: number, keep: boolean): string {
  const local = engine.endpoint.options.socketPath ?? '/var/run/docker.sock';
  return `campaign_name: ${name}
base_config:
  backend: calibration
  measurement: { idle_baseline_s: 0.3, min_window_s: 0, gpus: 1 }
  calibration: { duration_s: 1.5 }
vary:
  calibration.matrix_size: [32, 48]
cycles: ${cycles}
seed: 3
thermal_gap: 0
runtime: docker
retries: 0
keep_services: ${keep}
hosts:
  - name: local1
    engine: unix://${local}
    gpus: [GPU-l0=FakeA100, GPU-l1=FakeA100]
  - name: ssh1
    engine: ${pool.ssh.engine}
    ssh_options: [IdentityFile=${pool.ssh.identity}, UserKnownHostsFile=${pool.ssh.known_hosts}, StrictHostKeyChecking=yes]
    gpus: [GPU-s0=FakeA100]
  - name: tls1
    engine: ${pool.tls.engine}
    tls: { ca: ${pool.tls.ca}, cert: ${pool.tls.cert}, key: ${pool.tls.key} }
    gpus: [GPU-t0=FakeA100]
placement: { group_by: gpu_model, on_host_loss: retry_elsewhere }
`;
}

function workspace(name: string): { dir: string; state: string; file: string; env: Record<string, string> } {
  const dir = tempWorkspace(`lem-pool-${name}-`);
  const project = uniqueId('lempool').toLowerCase().replace(/[^a-z0-9-]/g, '');
  projects.push(project);
  writeFileSync(join(dir, 'docker-compose.yml'), `name: ${project}\nservices:\n  cpu:\n    image: ${pool.image}\n    network_mode: none\n`);
  const state = join(dir, 'state');
  mkdirSync(state);
  return { dir, state, file: join(dir, 'campaign.yaml'), env: { LEM_COMPOSE_FILE: join(dir, 'docker-compose.yml'), LEM_FAKE_GPUS: '1', LEM_LOCK_DIR: join(dir, 'locks') } };
}

function readManifest(state: string, id: string) {
  const db = new Database(join(state, 'lem.db'), { readonly: true });
  try {
    return {
      runs: db.prepare('SELECT position, status, attempt, result_path FROM runs WHERE campaign_id = ? ORDER BY position').all(id) as Array<{ position: number; status: string; attempt: number; result_path: string | null }>,
      events: db.prepare('SELECT position, kind, detail_json FROM events WHERE campaign_id = ? ORDER BY seq').all(id) as Array<{ position: number | null; kind: string; detail_json: string }>,
      windows: db.prepare('SELECT position, attempt, device, started_at, ended_at FROM windows WHERE campaign_id = ?').all(id) as Array<{ position: number; attempt: number; device: string; started_at: string; ended_at: string }>,
    };
  } finally {
    db.close();
  }
}

function expectDisjointWindows(windows: ReturnType<typeof readManifest>['windows']): void {
  const clash: string[] = [];
  for (const [i, a] of windows.entries()) {
    for (const b of windows.slice(i + 1)) if (a.device === b.device && a.started_at < b.ended_at && b.started_at < a.ended_at) clash.push(`${a.position}/${b.position} on ${a.device}`);
  }
  expect(clash).toEqual([]);
}

describe.skipIf(!run)('a pool of Docker engines: unix, ssh (OpenSSH forward) and tcp+tls, fake GPU lists', () => {
  beforeAll(async () => {
    await requireEngine();
    poolDir = tempWorkspace('lem-pool-engines-');
    execFileSync('bash', [join(ROOT, '.ci', 'pool-engines.sh'), 'start', poolDir, TEST_IMAGE], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 120_000 });
    pool = JSON.parse(readFileSync(join(poolDir, 'pool.json'), 'utf8')) as PoolEnv;
  }, 150_000);

  afterAll(async () => {
    for (const p of projects) for (const c of await containersWithLabel(`lem.project=${p}`)) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
    if (poolDir) execFileSync('bash', [join(ROOT, '.ci', 'pool-engines.sh'), 'stop', poolDir], { stdio: 'inherit', timeout: 120_000 });
  }, 150_000);

  it('runs each run once over three hosts, results over the archive API, disjoint windows per (host, GPU); kill -9 and resume fetches an orphan\'s result', async () => {
    const w = workspace('once');
    writeFileSync(w.file, campaignYaml('poolonce', 3, true));
    // lem doctor checks every host through its own engine.
    const doc = spawnSync(process.execPath, [LEM, 'doctor', '--json', '--campaign', w.file], { cwd: ROOT, env: { ...process.env, ...w.env }, encoding: 'utf8' }).stdout;
    const checks = (JSON.parse(doc) as { checks: Array<{ id: string; status: string; summary: string }> }).checks;
    for (const h of ['local1', 'ssh1', 'tls1']) {
      expect(checks.find((c) => c.id === `host:${h}`)?.status, JSON.stringify(checks)).toBe('ok');
      expect(checks.find((c) => c.id === `host:${h}:image:cpu`)?.status).toBe('ok');
      expect(checks.find((c) => c.id === `host:${h}:gpus`)?.summary).toMatch(/fake list/);
    }
    const first = startLem(['--state', w.state, 'campaign', 'run', w.file], w.env);
    const placed = await waitPlacedOn(w.state, 'tls1');
    await sleep(300); // its worker is measuring on the remote engine
    first.kill();
    const killed = await first.done;
    expect(killed.code, killed.stderr).toBeNull();
    const id = /campaign (poolonce-\S+):/.exec(killed.stderr)?.[1] as string;
    await sleep(3_500); // the orphan finishes; its result is only in the volume on tls1
    const resumed = startLem(['--state', w.state, 'campaign', 'resume', id], w.env);
    const r = await resumed.done;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/completed — 6 succeeded/);

    const m = readManifest(w.state, id);
    if (!m.events.some((e) => e.position === placed.position && e.kind === 'run_recovered')) console.log(r.stderr, JSON.stringify(m.events.filter((e) => e.position === placed.position)));
    expect(m.runs.map((x) => x.status)).toEqual(Array(6).fill('succeeded'));
    for (const x of m.runs) {
      expect(m.events.filter((e) => e.position === x.position && (e.kind === 'run_succeeded' || e.kind === 'run_recovered'))).toHaveLength(1);
      expect(existsSync(x.result_path ?? ''), `result of run ${x.position} here`).toBe(true);
    }
    // The orphan on tls1 was not run again: its result came back from the host's volume.
    expect(m.events.some((e) => e.position === placed.position && e.kind === 'run_recovered')).toBe(true);
    expect(r.stderr).toMatch(/fetched \d+ result file\(s\) from remote hosts/);
    const hostsUsed = new Set(m.events.filter((e) => e.kind === 'placed').map((e) => (JSON.parse(e.detail_json) as { host: string }).host));
    expect(hostsUsed).toEqual(new Set(['local1', 'ssh1', 'tls1']));
    expectDisjointWindows(m.windows);
    expect(new Set(m.windows.map((x) => x.device)).size).toBeGreaterThanOrEqual(3);

    // Remote services: only named volumes, no bind of this machine's paths; labelled with their GPUs.
    for (const [name, socket] of [['ssh1', pool.ssh.socket], ['tls1', pool.tls.socket]] as const) {
      const remote = new Docker({ socketPath: socket });
      const cs = await remote.listContainers({ all: true, filters: { label: [`lem.campaign=${id}`] } });
      expect(cs.length, name).toBeGreaterThan(0);
      for (const c of cs) {
        const info = await remote.getContainer(c.Id).inspect();
        expect(info.Mounts.map((mt) => mt.Type)).not.toContain('bind');
        expect(info.HostConfig.Binds?.every((b) => !b.startsWith('/'))).toBe(true);
        expect(c.Labels['lem.gpus']).toBe(name === 'ssh1' ? 'GPU-s0' : 'GPU-t0');
      }
    }
  }, 120_000);

  it('an engine killed mid-run: its run is interrupted, placed again on another host, and the campaign goes on', async () => {
    const w = workspace('loss');
    writeFileSync(w.file, campaignYaml('poolloss', 3, false));
    const lem = startLem(['--state', w.state, 'campaign', 'run', w.file], w.env);
    const placed = await waitPlacedOn(w.state, 'ssh1');
    await sleep(300);
    process.kill(Number(readFileSync(pool.ssh.pidfile, 'utf8').trim()), 'SIGKILL');
    const r = await lem.done;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/completed — 6 succeeded/);
    expect(r.stderr).toMatch(/host ssh1 stopped answering/);
    const id = /campaign (poolloss-\S+):/.exec(r.stderr)?.[1] as string;
    const m = readManifest(w.state, id);
    expect(m.runs.map((x) => x.status)).toEqual(Array(6).fill('succeeded'));
    for (const x of m.runs) expect(m.events.filter((e) => e.position === x.position && e.kind === 'run_succeeded')).toHaveLength(1);
    const mine = m.events.filter((e) => e.position === placed.position);
    const interrupted = mine.find((e) => e.kind === 'run_interrupted' && (JSON.parse(e.detail_json) as { attempt?: number }).attempt === placed.attempt);
    expect(interrupted?.detail_json).toMatch(/host ssh1 was lost/);
    const after = mine.filter((e) => e.kind === 'placed').map((e) => JSON.parse(e.detail_json) as { host: string; attempt: number });
    expect(after.at(-1)?.host).not.toBe('ssh1');
    expect(after.at(-1)?.attempt).toBeGreaterThan(placed.attempt);
    expectDisjointWindows(m.windows);
  }, 120_000);
});
