/** The manifest against a real SQLite file. */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { Manifest } from '../../src/manifest/manifest.js';
import { MIGRATIONS, SCHEMA_VERSION, openDb } from '../../src/manifest/db.js';
import { systemClock } from '../../src/util/clock.js';
import { tempDir } from '../helpers/cli.js';
import type { CampaignSettings } from '../../src/config/campaign.js';
import { ExperimentConfig } from '../../src/config/experiment.js';

const settings: CampaignSettings = { cycles: 2, structure: 'interleaved', seed: 1, thermal_gap: 0, runtime: 'local', force_cold_start: false, retries: 0, keep_services: false };
const exp = (id: string) => ({ id, name: id, backend: 'calibration' as const, config: ExperimentConfig.parse({ backend: 'calibration' }) });

let open: Manifest[] = [];
afterEach(() => {
  for (const m of open) m.close();
  open = [];
});

function fresh(): { m: Manifest; path: string } {
  const path = join(tempDir(), 'lem.db');
  const m = Manifest.open(path, systemClock);
  open.push(m);
  m.createCampaign({
    id: 'c1',
    name: 'c',
    sourcePath: 'c.yaml',
    settings,
    notes: [],
    experiments: [exp('e1'), exp('e2')],
    runs: [
      { position: 0, experimentId: 'e1', cycle: 1 },
      { position: 1, experimentId: 'e2', cycle: 1 },
      { position: 2, experimentId: 'e1', cycle: 2 },
    ],
  });
  return { m, path };
}

describe('manifest', () => {
  it('migrates to the current schema version, in WAL mode', () => {
    const { path } = fresh();
    const db = new Database(path, { readonly: true });
    expect(db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    db.close();
  });

  it('upgrades a manifest written by an older lem in place, keeping its runs', () => {
    const path = join(tempDir(), 'old.db');
    const old = new Database(path);
    old.exec(MIGRATIONS[0] as string);
    old.pragma('user_version = 1');
    old.prepare("INSERT INTO campaigns VALUES ('c', 'c', 'x', '{}', '[]', 'completed', 't', 't', NULL, NULL)").run();
    old.prepare("INSERT INTO experiments VALUES ('c', 'e', 0, 'e', 'calibration', '{}')").run();
    old.prepare("INSERT INTO runs (campaign_id, position, experiment_id, cycle, status, metrics_json) VALUES ('c', 0, 'e', 1, 'succeeded', '{\"x\":1}')").run();
    old.close();
    const db = openDb(path);
    expect(db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    expect(db.prepare('SELECT metrics_json, flags_json FROM runs').get()).toEqual({ metrics_json: '{"x":1}', flags_json: null });
    db.close();
  });

  it('refuses a manifest from a newer lem', () => {
    const path = join(tempDir(), 'new.db');
    const db = new Database(path);
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    expect(() => openDb(path)).toThrow(/newer than this lem understands/);
  });

  it('records a campaign with its experiments and pending runs', () => {
    const { m } = fresh();
    expect(m.counts('c1')).toEqual({ pending: 3, running: 0, succeeded: 0, failed: 0, interrupted: 0 });
    expect(m.experiments('c1').map((e) => e.id)).toEqual(['e1', 'e2']);
    expect(m.findCampaign('c').id).toBe('c1');
  });

  it('records a result once: a second success for the same attempt changes nothing', () => {
    const { m } = fresh();
    m.markRunning('c1', 0, 1);
    expect(m.markSucceeded('c1', 0, 1, { resultPath: '/r1', metrics: { x: 1 }, flags: [], exitCode: 0 })).toBe(true);
    expect(m.markSucceeded('c1', 0, 1, { resultPath: '/r2', metrics: { x: 2 }, flags: [], exitCode: 0 })).toBe(false);
    const run = m.run('c1', 0);
    expect(run?.resultPath).toBe('/r1');
    expect(run?.metrics).toEqual({ x: 1 });
    expect(() => m.markRunning('c1', 0, 2)).toThrow(/already succeeded/);
    expect(m.events('c1').filter((e) => e.kind === 'run_succeeded')).toHaveLength(1);
  });

  it('ignores a late outcome of a stale attempt', () => {
    const { m } = fresh();
    m.markRunning('c1', 1, 1);
    m.markEnded('c1', 1, 1, { status: 'interrupted', exitCode: null, error: 'x' });
    m.markRunning('c1', 1, 2);
    expect(m.markSucceeded('c1', 1, 1, { resultPath: '/old', metrics: {}, flags: [], exitCode: 0 })).toBe(false);
    expect(m.run('c1', 1)?.status).toBe('running');
  });

  it('keeps the event log append-only', () => {
    const { m } = fresh();
    expect(() => m.db.prepare("UPDATE events SET kind = 'x'").run()).toThrow(/append-only/);
    expect(() => m.db.prepare('DELETE FROM events').run()).toThrow(/append-only/);
  });

  it('refuses a second live owner and lets a dead owner be taken over', async () => {
    const { m } = fresh();
    const sleeper = spawn('sleep', ['30']);
    try {
      m.claim('c1', sleeper.pid);
      expect(() => m.claim('c1', process.pid)).toThrow(/being run by process/);
    } finally {
      sleeper.kill('SIGKILL');
      await new Promise((r) => sleeper.once('exit', r));
    }
    m.claim('c1', process.pid);
    expect(m.campaign('c1')?.ownerPid).toBe(process.pid);
  });

  it('finds campaigns by unique prefix and explains ambiguity', () => {
    const { m } = fresh();
    m.createCampaign({ id: 'c10', name: 'c', sourcePath: 'x', settings, notes: [], experiments: [exp('e1')], runs: [] });
    expect(() => m.findCampaign('c')).toThrow(/matches 2 campaigns/);
    expect(() => m.findCampaign('zz')).toThrow(/no campaign 'zz'/);
    expect(m.findCampaign('c10').id).toBe('c10');
  });
});
