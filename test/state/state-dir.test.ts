/**
 * A damaged, read-only or full state directory, and result files that went missing, through the
 * real CLI on a real campaign (local runtime, real calibration worker): clear messages and
 * documented exit codes (2 not writable, 3 disk full, 4 damaged), never a stack trace.
 * The read-only and disk-full cases mount a small tmpfs (they need root, as CI has).
 */
import { execFileSync } from 'node:child_process';
import { appendFileSync, cpSync, existsSync, mkdirSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync, openSync, writeSync, closeSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lem, tempDir, type CliResult } from '../helpers/cli.js';

const isRoot = process.getuid?.() === 0;
const mounts: string[] = [];
function mountTmpfs(dir: string, size: string): void {
  mkdirSync(dir, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir]);
  mounts.push(dir);
}
afterAll(() => {
  for (const m of mounts.splice(0).reverse()) {
    try {
      execFileSync('umount', [m]);
    } catch {
      // already gone
    }
  }
});

const CAMPAIGN = (name: string, cycles: number): string => `campaign_name: ${name}
cycles: ${cycles}
thermal_gap: 0
structure: interleaved
retries: 0
base_config:
  backend: calibration
  calibration: {matrix_size: 16, duration_s: 0.05}
  measurement: {idle_baseline_s: 0, min_window_s: 0}
vary:
  calibration.matrix_size: [16, 24]
`;

function clean(r: CliResult, code: number): string {
  expect(r.code, r.stderr).toBe(code);
  expect(r.stderr).not.toMatch(/\n\s+at |node:internal|internal error|SqliteError/);
  return r.stderr;
}

function resultFiles(state: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else if (e.name === 'result.json') out.push(join(d, e.name));
    }
  };
  walk(join(state, 'runs'));
  return out.sort();
}

let work: string;
let good: string;
let campaignId: string;
beforeAll(() => {
  work = tempDir('lem-state-');
  good = join(work, 'good');
  writeFileSync(join(work, 'c.yaml'), CAMPAIGN('tiny', 1));
  clean(lem(['--state', good, 'campaign', 'run', join(work, 'c.yaml')]), 0);
  const list = (JSON.parse(lem(['--state', good, 'campaign', 'list', '--json']).stdout) as { campaigns: Array<{ id: string }> }).campaigns;
  campaignId = (list[0] as { id: string }).id;
}, 240_000);

/** A copy of the good state directory (manifest checkpointed: no -wal to hide the damage). */
function copyState(name: string): string {
  const dir = join(work, name);
  cpSync(good, dir, { recursive: true });
  for (const f of ['lem.db-wal', 'lem.db-shm']) rmSync(join(dir, f), { force: true });
  return dir;
}

describe('a damaged manifest: exit 4, names the file and what to do', () => {
  const damage: Array<[string, (db: string) => void]> = [
    ['truncated', (db) => truncateSync(db, Math.floor(statSync(db).size / 2) + 100)],
    ['not an SQLite file', (db) => writeFileSync(db, 'this is not a database\n'.repeat(300))],
    [
      'zeroed pages',
      (db) => {
        const fd = openSync(db, 'r+');
        writeSync(fd, Buffer.alloc(3 * 4096), 0, 3 * 4096, 2 * 4096);
        closeSync(fd);
      },
    ],
  ];
  for (const [what, hurt] of damage) {
    it(`${what}: every command says the manifest is damaged; state check reports it`, () => {
      const dir = copyState(`damaged-${what.replace(/\W+/g, '-')}`);
      const db = join(dir, 'lem.db');
      hurt(db);
      for (const args of [['campaign', 'list'], ['campaign', 'status'], ['results', 'show', campaignId], ['campaign', 'run', join(work, 'c.yaml')]]) {
        const msg = clean(lem(['--state', dir, ...args]), 4);
        expect(msg.trim().split('\n')).toHaveLength(1);
        expect(msg).toContain(`lem: the manifest ${db} is damaged (`);
        expect(msg).toMatch(/lem state backup/);
        expect(msg).toMatch(/Recovering from a damaged state directory/);
      }
      const check = lem(['--state', dir, 'state', 'check', '--json']);
      expect(check.code).toBe(4);
      const report = JSON.parse(check.stdout) as { ok: boolean; manifest: { ok: boolean; problem: string } };
      expect(report.ok).toBe(false);
      expect(report.manifest.ok).toBe(false);
      expect(report.manifest.problem).toContain(db);
    });
  }
});

describe('lem state check and lem state backup', () => {
  it('check passes on a healthy state directory; backup makes a restorable copy', () => {
    const dir = copyState('backup');
    const check = lem(['--state', dir, 'state', 'check', '--json']);
    expect(check.code, check.stderr).toBe(0);
    expect(JSON.parse(check.stdout)).toMatchObject({ ok: true, manifest: { ok: true }, campaigns: 1, results: { checked: 2, missing: [], changed: [] } });

    const out = join(work, 'backup-copy.db');
    const b = lem(['--state', dir, 'state', 'backup', '--out', out]);
    expect(b.code, b.stderr).toBe(0);
    expect(existsSync(out)).toBe(true);
    expect(clean(lem(['--state', dir, 'state', 'backup', '--out', out]), 2)).toMatch(/already exists/);

    // Damage the manifest, restore the backup as the README says: everything reads again.
    writeFileSync(join(dir, 'lem.db'), 'garbage');
    clean(lem(['--state', dir, 'campaign', 'list']), 4);
    cpSync(out, join(dir, 'lem.db'));
    const list = lem(['--state', dir, 'campaign', 'list', '--json']);
    expect(list.code).toBe(0);
    expect((JSON.parse(list.stdout) as { campaigns: Array<{ id: string; runs: { succeeded: number } }> }).campaigns[0]).toMatchObject({ id: campaignId, runs: { succeeded: 2 } });
  });
});

describe('result files that are missing or changed after ingest', () => {
  it('results show, export and report say which are missing or changed; state check lists them (exit 4)', () => {
    // A campaign of its own: the manifest records absolute result paths.
    const dir = join(work, 'missing');
    clean(lem(['--state', dir, 'campaign', 'run', join(work, 'c.yaml')]), 0);
    const campaignId = (JSON.parse(lem(['--state', dir, 'campaign', 'list', '--json']).stdout) as { campaigns: Array<{ id: string }> }).campaigns[0]?.id ?? '';
    const files = resultFiles(dir);
    expect(files).toHaveLength(2);
    renameSync(files[0] as string, `${files[0] as string}.moved`);
    appendFileSync(files[1] as string, ' ');

    const show = lem(['--state', dir, 'results', 'show', campaignId, '--json']);
    expect(show.code, show.stderr).toBe(0);
    expect(show.stderr).toMatch(/warning: 1 result missing: run \d+ .*result\.json/);
    expect(show.stderr).toMatch(/1 result changed since ingest/);
    const json = JSON.parse(show.stdout) as { result_files: { checked: number; missing: Array<{ path: string }>; changed: Array<{ path: string }> } };
    expect(json.result_files.checked).toBe(2);
    expect(json.result_files.missing.map((m) => m.path)).toEqual([files[0]]);
    expect(json.result_files.changed.map((m) => m.path)).toEqual([files[1]]);

    const exp = lem(['--state', dir, 'results', 'export', campaignId, '--format', 'csv']);
    expect(exp.code).toBe(0);
    expect(exp.stderr).toMatch(/1 result missing/);

    const reportPath = join(work, 'missing-report.html');
    const rep = lem(['--state', dir, 'report', campaignId, '--out', reportPath]);
    expect(rep.code, rep.stderr).toBe(0);
    expect(rep.stderr).toMatch(/1 result missing/);

    const check = lem(['--state', dir, 'state', 'check']);
    expect(check.code).toBe(4);
    expect(check.stdout).toMatch(/2 checked, 1 missing, 1 changed since ingest/);
    expect(check.stdout).toContain(`missing: ${campaignId}`);
  });
});

describe.skipIf(!isRoot)('a read-only state directory (a read-only tmpfs mount; needs root)', () => {
  it('read commands work on it; write commands say it is not writable (exit 2)', () => {
    const dir = join(work, 'ro');
    mountTmpfs(dir, '8m');
    cpSync(good, dir, { recursive: true });
    execFileSync('mount', ['-o', 'remount,ro', dir]);
    for (const args of [['campaign', 'list', '--json'], ['campaign', 'status', '--json'], ['results', 'show', campaignId, '--json']]) {
      const r = lem(['--state', dir, ...args]);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
      expect(r.stdout).toContain(campaignId);
    }
    expect(lem(['--state', dir, 'state', 'check']).code).toBe(0);
    expect(clean(lem(['--state', dir, 'report', campaignId, '--out', join(work, 'ro-report.html')]), 0)).not.toMatch(/lem:/);
    for (const args of [['campaign', 'resume', campaignId], ['campaign', 'run', join(work, 'c.yaml')]]) {
      expect(clean(lem(['--state', dir, ...args]), 2)).toMatch(new RegExp(`the state directory ${dir} is not writable`));
    }
  });
});

describe('a full disk', () => {
  it('below the free-space minimum, a campaign stops before a run with "disk full at" (exit 3)', () => {
    const dir = join(work, 'min-free');
    const r = lem(['--state', dir, 'campaign', 'run', join(work, 'c.yaml')], { env: { LEM_MIN_FREE_BYTES: String(Number.MAX_SAFE_INTEGER) } });
    expect(clean(r, 3)).toMatch(new RegExp(`lem: disk full at ${dir} \\(\\d+ bytes free, less than`));
    const status = JSON.parse(lem(['--state', dir, 'campaign', 'status', '--json']).stdout) as { runs: { running: number; pending: number } };
    expect(status.runs.running).toBe(0);
    expect(status.runs.pending).toBe(2);
  });

  it.skipIf(!isRoot)('a real full filesystem (tiny tmpfs, needs root): stops cleanly (exit 3), nothing left running, resume completes once space is freed', () => {
    const dir = join(work, 'full');
    mountTmpfs(dir, '1m');
    writeFileSync(join(work, 'c6.yaml'), CAMPAIGN('fill', 4));
    // Leave room for the manifest and a run or two, then let the writes fail for real.
    writeFileSync(join(dir, 'filler'), Buffer.alloc(400_000, 1));
    const env = { LEM_MIN_FREE_BYTES: '0' };
    const r = lem(['--state', dir, 'campaign', 'run', join(work, 'c6.yaml')], { env });
    expect(clean(r, 3)).toMatch(/lem: disk full at \//);
    const status = JSON.parse(lem(['--state', dir, 'campaign', 'status', '--json']).stdout) as {
      id: string;
      status: string;
      runs: { running: number; succeeded: number; interrupted: number; total: number };
      recent_problems: Array<{ status: string; error: string }>;
    };
    expect(status.status).toBe('interrupted');
    expect(status.runs.running).toBe(0);
    expect(status.runs.succeeded).toBeLessThan(status.runs.total);
    // The run in flight when the disk filled is recorded as interrupted, with the reason.
    expect(status.recent_problems.filter((p) => p.status === 'failed')).toEqual([]);
    for (const p of status.recent_problems) expect(p.error).toMatch(/^disk full at \//);

    execFileSync('mount', ['-o', 'remount,size=8m', dir]);
    rmSync(join(dir, 'filler'));
    const resumed = lem(['--state', dir, 'campaign', 'resume', status.id], { env });
    expect(resumed.code, resumed.stderr).toBe(0);
    const after = JSON.parse(lem(['--state', dir, 'campaign', 'status', '--json']).stdout) as { runs: { succeeded: number; total: number } };
    expect(after.runs.succeeded).toBe(after.runs.total);
    expect(lem(['--state', dir, 'state', 'check']).code).toBe(0);
  });
});
