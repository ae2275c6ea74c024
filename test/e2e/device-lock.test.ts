/**
 * One measurement per device at a time, through the real CLI on the local runtime:
 *  - kill -9 the orchestrator at several offsets right after a run's dispatch, resume each time:
 *    no two result windows written under the run directories (recorded or not) overlap, and every
 *    run has exactly one recorded result;
 *  - two campaigns in one state directory: the second says the first is running, its run waits
 *    for the device lock (recorded in the manifest and on the progress line), nothing overlaps.
 */
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { scanLocalWorkers } from '../../src/runtime/local.js';
import { lem, lemKillAt, lemSpawn, RUN_STARTED, tempDir } from '../helpers/cli.js';

function campaignFile(dir: string, name: string, body: string): string {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, `campaign_name: ${name}\n${body}`);
  return file;
}

const KILLABLE = `base_config:
  backend: calibration
  measurement: { idle_baseline_s: 0.3, min_window_s: 0 }
  calibration: { duration_s: 2 }
vary:
  calibration.matrix_size: [32, 48]
cycles: 2
structure: shuffled
seed: 3
thermal_gap: 0
runtime: local
retries: 0
`;

/** Starts the CLI and kill -9s it `delayMs` after its first run-start progress line (or lets it end). */
function startAndKill(args: string[], delayMs: number): Promise<{ stderr: string; killed: boolean }> {
  return lemKillAt(args, {}, delayMs, (stderr) => RUN_STARTED.test(stderr));
}

interface Window {
  file: string;
  devices: string[];
  start: number;
  end: number;
}

/** Every result.json under state/runs (recorded or not), with its measured window. */
function resultWindows(state: string): Window[] {
  const out: Window[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir)) {
      const p = join(dir, e);
      if (statSync(p).isDirectory()) walk(p);
      else if (e === 'result.json') {
        const r = JSON.parse(readFileSync(p, 'utf8')) as { window: { started_at: string; ended_at: string }; device_lock: { devices: string[] } };
        out.push({ file: p, devices: r.device_lock.devices, start: Date.parse(r.window.started_at), end: Date.parse(r.window.ended_at) });
      }
    }
  };
  walk(join(state, 'runs'));
  return out;
}

function overlaps(windows: Window[]): string[] {
  const found: string[] = [];
  for (let i = 0; i < windows.length; i++) {
    for (let j = i + 1; j < windows.length; j++) {
      const a = windows[i] as Window;
      const b = windows[j] as Window;
      if (a.devices.some((d) => b.devices.includes(d)) && a.start < b.end && b.start < a.end) found.push(`${a.file} <> ${b.file}`);
    }
  }
  return found;
}

function manifestRows(state: string, campaignId: string) {
  const db = new Database(join(state, 'lem.db'), { readonly: true });
  try {
    const runs = db.prepare('SELECT position, status, attempt, flags_json FROM runs WHERE campaign_id = ? ORDER BY position').all(campaignId) as Array<{
      position: number;
      status: string;
      attempt: number;
      flags_json: string | null;
    }>;
    const events = db.prepare('SELECT position, kind, detail_json FROM events WHERE campaign_id = ? ORDER BY seq').all(campaignId) as Array<{
      position: number | null;
      kind: string;
      detail_json: string;
    }>;
    const windows = db.prepare('SELECT count(*) AS n FROM windows WHERE campaign_id = ?').get(campaignId) as { n: number };
    return { runs, events, windows: windows.n };
  } finally {
    db.close();
  }
}

describe('device lock through the CLI (local runtime)', () => {
  it('kill -9 right after dispatch, resume, repeat: no two measured windows overlap, one recorded result per run', async () => {
    const dir = tempDir();
    const state = join(dir, 'state');
    const file = campaignFile(dir, 'lockkill', KILLABLE);
    const offsets = [0, 20, 60, 150];
    const first = await startAndKill(['--state', state, 'campaign', 'run', file], offsets[0] as number);
    expect(first.killed).toBe(true);
    const id = /campaign (lockkill-\S+):/.exec(first.stderr)?.[1] as string;
    expect(id).toBeDefined();
    let kills = 1;
    for (const offset of offsets.slice(1)) {
      const r = await startAndKill(['--state', state, 'campaign', 'resume', id], offset);
      if (r.killed) kills++;
    }
    expect(kills).toBe(offsets.length);

    const final = lem(['--state', state, 'campaign', 'resume', id]);
    expect(final.code, final.stderr).toBe(0);
    expect(final.stdout).toMatch(/completed — 4 succeeded/);

    const { runs, events } = manifestRows(state, id);
    // The kills hit runs in flight (otherwise this proves nothing).
    expect(events.some((e) => ['run_interrupted', 'run_recovered', 'workers_stopped'].includes(e.kind))).toBe(true);
    expect(runs).toHaveLength(4);
    for (const run of runs) {
      expect(run.status).toBe('succeeded');
      const successes = events.filter((e) => e.position === run.position && (e.kind === 'run_succeeded' || e.kind === 'run_recovered'));
      expect(successes).toHaveLength(1);
    }
    const windows = resultWindows(state);
    expect(windows.length).toBeGreaterThanOrEqual(4);
    expect(overlaps(windows)).toEqual([]);
    expect(runs.filter((r) => (JSON.parse(r.flags_json ?? '[]') as string[]).includes('overlapping_window'))).toEqual([]);
    expect(scanLocalWorkers(id)).toEqual([]);
  }, 240_000);

  it('a second campaign in the same state directory says so and waits for the device', async () => {
    const dir = tempDir();
    const state = join(dir, 'state');
    const long = campaignFile(dir, 'holder', `base_config:
  backend: calibration
  measurement: { idle_baseline_s: 0, min_window_s: 0 }
  calibration: { duration_s: 15, matrix_size: 32 }
cycles: 1
thermal_gap: 0
runtime: local
retries: 0
`);
    const short = campaignFile(dir, 'waiter', `base_config:
  backend: calibration
  measurement: { idle_baseline_s: 0, min_window_s: 0 }
  calibration: { duration_s: 0.2, matrix_size: 32 }
cycles: 1
thermal_gap: 0
runtime: local
retries: 0
`);
    const lockFile = join(process.env['LEM_LOCK_DIR'] as string, 'cpu.lock');
    const holder = lemSpawn(['--state', state, 'campaign', 'run', long]);
    let holderErr = '';
    holder.stderr?.on('data', (d: Buffer) => (holderErr += d.toString()));
    const holderDone = new Promise<number | null>((resolve) => holder.once('exit', (c) => resolve(c)));
    // Wait until the first campaign's worker holds the device (its details are in the lock file).
    for (let i = 0; i < 600 && !(existsSync(lockFile) && readFileSync(lockFile, 'utf8').includes('holder-')); i++) await new Promise((r) => setTimeout(r, 50));
    expect(readFileSync(lockFile, 'utf8')).toContain('holder-');

    // Asynchronously, so this process keeps reading the first one's output meanwhile.
    const second = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = lemSpawn(['--state', state, 'campaign', 'run', short]);
      let stderr = '';
      child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
      child.once('exit', (code) => resolve({ code, stderr }));
    });
    expect(await holderDone).toBe(0);
    expect(second.code, second.stderr).toBe(0);
    const holderId = /campaign (holder-\S+):/.exec(holderErr)?.[1] as string;
    const waiterId = /campaign (waiter-\S+):/.exec(second.stderr)?.[1] as string;
    expect(second.stderr).toMatch(new RegExp(`campaign ${holderId} \\(pid \\d+ on \\S+\\) is running; runs will wait for the device lock`));
    expect(second.stderr).toMatch(/ok in [\d.]+s \(waited [\d.]+s for the device lock\)/);

    const waited = manifestRows(state, waiterId).events.filter((e) => e.kind === 'device_lock_waited');
    expect(waited).toHaveLength(1);
    const detail = JSON.parse(waited[0]?.detail_json ?? '{}') as { waited_s: number; waited_for: { campaign_id: string }; devices: string[] };
    expect(detail.waited_s).toBeGreaterThan(0);
    expect(detail.waited_for.campaign_id).toBe(holderId);
    expect(detail.devices).toEqual(['cpu']);

    expect(overlaps(resultWindows(state))).toEqual([]);
    expect(manifestRows(state, holderId).windows + manifestRows(state, waiterId).windows).toBe(2);
  }, 120_000);
});
