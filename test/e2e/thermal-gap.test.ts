/**
 * Thermal gaps end to end on the local runtime: the gap polls the worker's `thermal` probe, here
 * playing the worker's fake cooling curve (LEM_FAKE_THERMAL: each run heats the fake GPU, which then
 * cools towards idle); `lem calibrate` on this CPU host (no sensor: nulls with reasons) and on the
 * fake; a campaign referencing the calibration file.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { lem, tempDir } from '../helpers/cli.js';

interface Gap {
  waited_s: number;
  start_temp_c: number | null;
  end_temp_c: number | null;
  reason: string;
}

function campaign(dir: string, name: string, gap: string, extra = ''): string {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(
    file,
    `campaign_name: ${name}
configs:
  - backend: calibration
    calibration: {duration_s: 0.1, matrix_size: 16}
    measurement: {min_window_s: 0.05, idle_baseline_s: 0}
cycles: 2
structure: interleaved
runtime: local
retries: 0
thermal_gap: ${gap}
${extra}`,
  );
  return file;
}

function gaps(state: string): Gap[] {
  const db = new Database(join(state, 'lem.db'), { readonly: true });
  const rows = db.prepare("SELECT detail_json FROM events WHERE kind = 'thermal_gap' ORDER BY seq").all() as Array<{ detail_json: string }>;
  db.close();
  return rows.map((r) => JSON.parse(r.detail_json) as Gap);
}

function fake(dir: string, tau: number): string {
  const path = join(dir, 'fake-gpu.json');
  writeFileSync(path, JSON.stringify({ idle_c: 35, hot_c: 80, tau_s: tau, idle_w: 70, hot_w: 300 }));
  return path;
}

describe('thermal gaps through the worker (fake cooling curve)', () => {
  it('waits until the fake GPU has cooled to the target, and records each gap', () => {
    const dir = tempDir();
    // 80 → 50 °C with a 10 s time constant: about 11 s after the run ends (still hot at the first
    // reading even when a loaded machine needs seconds to start the probe).
    const env = { LEM_FAKE_THERMAL: fake(dir, 10) };
    const r = lem(['--state', dir, 'campaign', 'run', campaign(dir, 'cool', '{min_s: 0.2, max_s: 60, until_temp_c: 50}')], { env });
    expect(r.code, r.stderr).toBe(0);
    const g = gaps(dir);
    expect(g).toHaveLength(1);
    for (const x of g) {
      expect(x.reason).toBe('reached');
      expect(x.start_temp_c as number).toBeGreaterThan(50); // the run just heated it
      expect(x.end_temp_c as number).toBeLessThanOrEqual(50);
      expect(x.waited_s).toBeGreaterThanOrEqual(0.2);
    }
  }, 60_000);

  it('stops at max_s when the GPU does not cool in time', () => {
    const dir = tempDir();
    const env = { LEM_FAKE_THERMAL: fake(dir, 1000) };
    const r = lem(['--state', dir, 'campaign', 'run', campaign(dir, 'hot', '{min_s: 0, max_s: 1, until_temp_c: 40}')], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(gaps(dir).map((x) => x.reason)).toEqual(['max_reached']);
    for (const x of gaps(dir)) expect(x.waited_s).toBeGreaterThanOrEqual(1);
  }, 60_000);

  it('without a sensor (this CPU host) the fixed min_s applies and the reason says so', () => {
    const dir = tempDir();
    const r = lem(['--state', dir, 'campaign', 'run', campaign(dir, 'nosensor', '{min_s: 0.3, max_s: 30, until_temp_c: 40}')], { env: { LEM_FAKE_THERMAL: '' } });
    expect(r.code, r.stderr).toBe(0);
    for (const x of gaps(dir)) expect(x).toMatchObject({ reason: 'no_sensor', start_temp_c: null });
  }, 60_000);
});

describe('lem calibrate', () => {
  it('on CPU: says what it could not measure, recommends the defaults, writes the file', () => {
    const dir = tempDir();
    const out = join(dir, 'cal.json');
    const r = lem(['--state', dir, 'calibrate', '--burn-s', '0.3', '--idle-s', '0', '--settle-max-s', '2', '--out', out, '--json'], { env: { LEM_FAKE_THERMAL: '' } });
    expect(r.code, r.stderr).toBe(0);
    const f = JSON.parse(readFileSync(out, 'utf8')) as Record<string, { value: number | null; reason: string | null }> & { recommendation: { thermal_gap: unknown; min_window_s: number } };
    for (const k of ['idle_temp_c', 'idle_power_w', 'energy_counter_update_s', 'time_to_idle_s']) {
      expect(f[k]?.value).toBeNull();
      expect(f[k]?.reason).toMatch(/\S/);
    }
    expect(f.recommendation).toMatchObject({ thermal_gap: 60, min_window_s: 30 });
  }, 60_000);

  it('on the fake GPU: idle and time back to idle measured; a campaign uses the file for within_c_of_idle', () => {
    const dir = tempDir();
    const env = { LEM_FAKE_THERMAL: fake(dir, 0.5) };
    const out = join(dir, 'cal.json');
    const r = lem(['--state', dir, 'calibrate', '--burn-s', '0.3', '--idle-s', '0', '--settle-max-s', '10', '--out', out], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/recommended thermal_gap: \{"min_s":5,"max_s":\d+,"within_c_of_idle":2\}/);
    const f = JSON.parse(readFileSync(out, 'utf8')) as { idle_temp_c: { value: number }; time_to_idle_s: { value: number } };
    expect(f.idle_temp_c.value).toBe(35);
    expect(f.time_to_idle_s.value).toBeGreaterThan(0);

    const file = campaign(dir, 'calibrated', '{min_s: 0, max_s: 30, within_c_of_idle: 3}', 'calibration_file: cal.json\n');
    const run = lem(['--state', dir, 'campaign', 'run', file], { env });
    expect(run.code, run.stderr).toBe(0);
    for (const x of gaps(dir)) {
      expect(x.reason).toBe('reached');
      expect(x.end_temp_c as number).toBeLessThanOrEqual(38);
    }
    // Without the calibration file, a gap relative to idle is refused at its line.
    const bad = campaign(dir, 'uncalibrated', '{min_s: 0, max_s: 30, within_c_of_idle: 3}');
    const v = lem(['config', 'validate', bad]);
    expect(v.code).toBe(2);
    expect(v.stderr).toMatch(/uncalibrated\.yaml:\d+:\d+: field 'thermal_gap': .*lem calibrate/);
  }, 90_000);
});
