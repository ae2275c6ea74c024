/**
 * End to end: validation flags the worker raises are counted per gate in the campaign summary and in
 * `lem results show`, and `--exclude-flagged` leaves the flagged runs out (real worker, local runtime).
 * A window shorter than measurement.min_window_s raises window_too_short on every run here.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { lem, tempDir } from '../helpers/cli.js';

const YAML = `campaign_name: short-windows
base_config:
  backend: calibration
  calibration:
    duration_s: 0.2
    matrix_size: 16
  measurement:
    idle_baseline_s: 0
    min_window_s: 5
cycles: 2
seed: 3
thermal_gap: 0
runtime: local
retries: 0
`;

describe('flag counts per gate (local runtime, real worker)', () => {
  it('campaign summary and results show count window_too_short on both runs; --exclude-flagged uses none', () => {
    const state = tempDir();
    const file = join(state, 'short.yaml');
    writeFileSync(file, YAML);
    const r = lem(['--state', state, 'campaign', 'run', file, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { campaign: string; flags: { flagged: number; by_gate: Record<string, number> } };
    expect(out.flags.flagged).toBe(2);
    expect(out.flags.by_gate['window_too_short']).toBe(2);

    const show = lem(['--state', state, 'results', 'show', out.campaign]);
    expect(show.code, show.stderr).toBe(0);
    expect(show.stdout).toMatch(/2 flagged \([^)]*window_too_short ×2[^)]*\)/);

    const excluded = lem(['--state', state, 'results', 'show', out.campaign, '--exclude-flagged', '--json']);
    const agg = JSON.parse(excluded.stdout) as { totals: { used: number; flagged_excluded: number; flagged_by_gate: Record<string, number> } };
    expect(agg.totals.used).toBe(0);
    expect(agg.totals.flagged_excluded).toBe(2);
    expect(agg.totals.flagged_by_gate['window_too_short']).toBe(2);
  });
});
