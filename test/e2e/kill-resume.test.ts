/**
 * kill -9 the orchestrator at arbitrary moments, resume, repeat: every run ends up succeeded
 * exactly once, a succeeded run is never re-run, and no result is recorded twice.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { createRng } from '../../src/util/random.js';
import { lem, lemKillAt, lemSpawn, ROOT, tempDir, workersUnder } from '../helpers/cli.js';

const CAMPAIGN = join(ROOT, 'test', 'fixtures', 'campaigns', 'tiny-calibration.yaml');
/** Starts the CLI, waits until it has started `runsToSee` runs plus a random delay, then kill -9. */
function startAndKill(args: string[], runsToSee: number, delayMs: number): Promise<{ stderr: string; killed: boolean }> {
  return lemKillAt(args, {}, delayMs, (stderr) => (stderr.match(/^\[\d+\/\d+\]/gm) ?? []).length >= runsToSee);
}

describe('kill -9 and resume', () => {
  it('survives repeated kill -9 at arbitrary moments', async () => {
    const state = tempDir();
    const rng = createRng('kill-resume');
    const first = await startAndKill(['--state', state, 'campaign', 'run', CAMPAIGN], 1, 50 + rng.int(300));
    expect(first.killed).toBe(true);
    const id = /campaign (tiny-\S+):/.exec(first.stderr)?.[1];
    expect(id).toBeDefined();

    let kills = 1;
    for (let i = 0; i < 3; i++) {
      const r = await startAndKill(['--state', state, 'campaign', 'resume', id as string], 1 + rng.int(2), rng.int(400));
      if (r.killed) kills++;
    }
    expect(kills).toBeGreaterThanOrEqual(3);

    const final = lem(['--state', state, 'campaign', 'resume', id as string]);
    expect(final.code).toBe(0);
    expect(final.stdout).toMatch(/completed — 8 succeeded/);

    const db = new Database(join(state, 'lem.db'), { readonly: true });
    const runs = db.prepare('SELECT position, status, attempt, result_path, experiment_id, cycle FROM runs ORDER BY position').all() as Array<{
      position: number;
      status: string;
      attempt: number;
      result_path: string;
      experiment_id: string;
      cycle: number;
    }>;
    const events = db.prepare('SELECT position, kind, detail_json FROM events WHERE position IS NOT NULL ORDER BY seq').all() as Array<{ position: number; kind: string; detail_json: string }>;
    db.close();

    // The kills really hit runs in flight (otherwise this test proves nothing).
    expect(events.some((e) => e.kind === 'run_interrupted' || e.kind === 'run_recovered')).toBe(true);

    expect(runs).toHaveLength(8);
    for (const run of runs) {
      expect(run.status).toBe('succeeded');
      const mine = events.filter((e) => e.position === run.position);
      const successes = mine.filter((e) => e.kind === 'run_succeeded' || e.kind === 'run_recovered');
      expect(successes).toHaveLength(1);
      // Nothing started for this run after it succeeded.
      const okIndex = mine.indexOf(successes[0]!);
      expect(mine.slice(okIndex + 1).filter((e) => e.kind === 'run_started')).toEqual([]);
      // The recorded result is the one of the recorded attempt, and it belongs to this run.
      expect(JSON.parse(successes[0]!.detail_json)).toMatchObject({ attempt: run.attempt, result_path: run.result_path });
      expect(existsSync(run.result_path)).toBe(true);
      const result = JSON.parse(readFileSync(run.result_path, 'utf8')) as { experiment_id: string; cycle: number; attempt: number };
      expect(result).toMatchObject({ experiment_id: run.experiment_id, cycle: run.cycle, attempt: run.attempt });
    }
    expect(workersUnder(state)).toEqual([]);
  }, 120_000);
});

describe('Ctrl-C', () => {
  it('stops cleanly: the running run is marked interrupted, the worker is gone, resume finishes', async () => {
    const state = tempDir();
    const child = lemSpawn(['--state', state, 'campaign', 'run', CAMPAIGN]);
    let stderr = '';
    let stdout = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    const code = await new Promise<number | null>((resolve) => {
      let sent = false;
      child.stderr?.on('data', (d: Buffer) => {
        stderr += d.toString();
        // Interrupt while the second run is in flight.
        if (!sent && (stderr.match(/^\[\d+\/\d+\]/gm) ?? []).length >= 2) {
          sent = true;
          setTimeout(() => child.kill('SIGINT'), 100);
        }
      });
      child.once('exit', (c) => resolve(c));
    });
    expect(code).toBe(130);
    expect(stdout).toMatch(/interrupted/);
    const id = /campaign (tiny-\S+):/.exec(stderr)?.[1] as string;
    const status = JSON.parse(lem(['--state', state, 'campaign', 'status', id, '--json']).stdout) as {
      status: string;
      runs: Record<string, number>;
      recent_problems: Array<{ status: string; error: string }>;
      experiments: Array<{ runs: Record<string, number> }>;
    };
    expect(status.status).toBe('interrupted');
    expect(status.recent_problems).toEqual([expect.objectContaining({ status: 'interrupted', error: expect.stringMatching(/interrupted by the user/) })]);
    expect(status.experiments.reduce((n, e) => n + (e.runs['interrupted'] ?? 0), 0)).toBe(1);
    expect(status.runs['interrupted']).toBe(1);
    expect(status.runs['running']).toBe(0);
    expect(workersUnder(state)).toEqual([]);
    const resumed = lem(['--state', state, 'campaign', 'resume', id]);
    expect(resumed.code).toBe(0);
    expect(resumed.stdout).toMatch(/completed — 8 succeeded/);
  }, 120_000);
});
