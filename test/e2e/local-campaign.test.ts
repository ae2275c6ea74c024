/**
 * End to end on the embedded default: the built CLI runs a calibration campaign with the real
 * Python worker as a subprocess and the real SQLite manifest.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { lem, ROOT, tempDir } from '../helpers/cli.js';

const CAMPAIGN = join(ROOT, 'test', 'fixtures', 'campaigns', 'tiny-calibration.yaml');

describe('local runtime, end to end', () => {
  it('runs a campaign, prints the summary table, and records every run with its result', () => {
    const state = tempDir();
    const r = lem(['--state', state, 'campaign', 'run', CAMPAIGN]);
    expect(r.stderr).toMatch(/campaign tiny-\S+: 2 experiment\(s\) × 4 cycle\(s\) = 8 run\(s\)/);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/completed — 8 succeeded, 0 failed/);
    expect(r.stdout).toMatch(/experiment\s+metric\s+n\s+mean\s+std\s+CV\s+95% CI \(Student t\)/);
    // 4 cycles: the few-cycles note says what the interval cannot show.
    expect(r.stdout).toMatch(/note: few cycles \(n = 4\): the t interval is wide .*cannot show drift/);
    expect(r.stdout).toMatch(/calibration matrix_size=32\s+flops_per_s\s+4\/4\s+\S+\s+\S+\s+\S+%\s+\[/);
    expect(r.stderr).toMatch(/\[8\/8\].*\n.*ok in .*done 8, failed 0, remaining 0/);
    // A metric this host cannot measure is shown as not measured, with the worker's reason.
    if (/energy_total_j\s+0\/4/.test(r.stdout)) expect(r.stdout).toMatch(/not measured on this host:\n(?:.*\n)*\s+energy_total_j: \S+/);

    const db = new Database(join(state, 'lem.db'), { readonly: true });
    const runs = db.prepare('SELECT * FROM runs ORDER BY position').all() as Array<{ status: string; result_path: string; metrics_json: string; experiment_id: string; cycle: number }>;
    db.close();
    expect(runs).toHaveLength(8);
    for (const run of runs) {
      expect(run.status).toBe('succeeded');
      expect(existsSync(run.result_path)).toBe(true);
      const result = JSON.parse(readFileSync(run.result_path, 'utf8')) as { experiment_id: string; cycle: number; metrics: Record<string, number | null> };
      expect(result.experiment_id).toBe(run.experiment_id);
      expect(result.cycle).toBe(run.cycle);
      expect(JSON.parse(run.metrics_json)).toEqual(result.metrics);
      expect(result.metrics['flops_per_s']).toBeGreaterThan(0);
    }
  });

  it('status and list answer in JSON for scripts', () => {
    const state = tempDir();
    expect(lem(['--state', state, 'campaign', 'run', CAMPAIGN]).code).toBe(0);
    const st = lem(['--state', state, 'campaign', 'status', '--json']);
    expect(st.code).toBe(0);
    const status = JSON.parse(st.stdout) as { status: string; runs: Record<string, number> };
    expect(status.status).toBe('completed');
    expect(status.runs).toMatchObject({ total: 8, succeeded: 8, failed: 0, pending: 0 });
    const ls = (JSON.parse(lem(['--state', state, 'campaign', 'list', '--json']).stdout) as { schema: string; campaigns: Array<{ id: string }> }).campaigns;
    expect(ls).toHaveLength(1);
    expect(lem(['--state', state, 'campaign', 'status', 'no-such-id']).code).toBe(2);
  });

  it('same seed, same run order across two campaigns', () => {
    const order = () => {
      const r = lem(['campaign', 'run', CAMPAIGN, '--dry-run', '--json']);
      return (JSON.parse(r.stdout) as { runs: Array<{ experiment_id: string; cycle: number }> }).runs;
    };
    expect(order()).toEqual(order());
  });
});
