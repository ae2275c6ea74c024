/**
 * `lem calibrate`: measure this machine through the worker (idle temperature and power, the energy
 * counter's update period, time back to idle after a burn) and recommend a thermal gap and a
 * minimum measurement window. The recommendation is a pure function of the measurement.
 */
import { writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { z } from 'zod';
import { CalibrationMeasurements, type CalibrationFile } from '../config/calibration-file.js';
import type { RuntimeName } from '../config/campaign.js';
import type { Runtime } from '../runtime/types.js';
import type { Clock } from '../util/clock.js';
import { LemError } from '../util/errors.js';

/** What `python3 -m lem_worker calibrate --json` prints: the measured part of a calibration file. */
export const WorkerCalibration = CalibrationMeasurements;
export type WorkerCalibration = z.infer<typeof WorkerCalibration>;

/** The gap is relative to idle (within 2 °C); the window long enough for the counter's granularity. */
export function recommend(m: WorkerCalibration): CalibrationFile['recommendation'] {
  const why: string[] = [];
  let thermal_gap: CalibrationFile['recommendation']['thermal_gap'];
  const settle = m.time_to_idle_s.value;
  if (settle !== null && m.idle_temp_c.value !== null) {
    const min_s = 5;
    const max_s = Math.max(min_s, Math.ceil(settle * 2));
    thermal_gap = { min_s, max_s, within_c_of_idle: 2 };
    why.push(`the GPU returned within 1 °C of idle (${m.idle_temp_c.value} °C) ${settle.toFixed(1)} s after a ${m.burn_s.toFixed(0)} s burn: wait until within 2 °C of idle, at least 5 s, at most twice that time (${max_s} s)`);
  } else {
    thermal_gap = 60;
    why.push(`no return-to-idle measurement (${m.time_to_idle_s.reason ?? m.idle_temp_c.reason ?? 'unknown'}): keep the fixed 60 s gap`);
  }
  let min_window_s = 30;
  const period = m.energy_counter_update_s.value;
  if (period !== null && period > 0) {
    min_window_s = Math.max(5, Math.ceil(period * 200));
    why.push(`the energy counter updates every ${(period * 1000).toFixed(0)} ms: a window of ≥ 200 updates (${min_window_s} s, and never under 5 s) keeps its granularity under 0.5 %`);
  } else {
    why.push(`counter update period not measured (${m.energy_counter_update_s.reason ?? 'unknown'}): keep the 30 s default window`);
  }
  return { thermal_gap, min_window_s, why };
}

export interface CalibrateOptions {
  runtimeName: RuntimeName;
  gpus: number[] | null;
  burnS: number;
  idleS: number;
  settleMaxS: number;
  out: string | null;
}

export async function calibrate(runtime: Runtime, opts: CalibrateOptions, clock: Clock, ctx: { campaignId: string; workspaceRoot: string }): Promise<CalibrationFile> {
  if (!runtime.workerTool) throw new LemError(`the ${runtime.name} runtime cannot run worker tools; use --runtime local, docker or slurm.`);
  await runtime.prepare(['calibration'], { campaignId: ctx.campaignId, workspaceRoot: ctx.workspaceRoot, forceColdStart: false });
  let raw;
  try {
    const args = ['calibrate', '--json', '--burn-s', String(opts.burnS), '--idle-s', String(opts.idleS), '--settle-max-s', String(opts.settleMaxS), ...(opts.gpus ? ['--gpus', opts.gpus.join(',')] : [])];
    raw = await runtime.workerTool('calibration', args, opts.burnS + opts.idleS + opts.settleMaxS + 120);
  } finally {
    await runtime.shutdown({ keepServices: false });
  }
  if (raw.exitCode !== 0) throw new LemError(`the worker's calibration failed (exit ${raw.exitCode}): ${raw.stderr.trim().slice(-500)}`, 1);
  let parsed;
  try {
    parsed = WorkerCalibration.safeParse(JSON.parse(raw.stdout.trim().split('\n').pop() ?? ''));
  } catch {
    throw new LemError(`the worker's calibration printed no JSON: ${raw.stdout.slice(0, 300)}`, 1);
  }
  if (!parsed.success) throw new LemError(`the worker's calibration output is not what this lem expects: ${parsed.error.issues[0]?.message ?? ''}`, 1);
  const m = parsed.data;
  const file: CalibrationFile = {
    schema_version: 1,
    created_at: clock.now().toISOString(),
    host: hostname(),
    runtime: opts.runtimeName,
    gpus: opts.gpus,
    idle_temp_c: m.idle_temp_c,
    idle_power_w: m.idle_power_w,
    energy_counter_update_s: m.energy_counter_update_s,
    burn_s: m.burn_s,
    burn_peak_temp_c: m.burn_peak_temp_c,
    time_to_idle_s: m.time_to_idle_s,
    recommendation: recommend(m),
  };
  if (opts.out) writeFileSync(opts.out, `${JSON.stringify(file, null, 2)}\n`);
  return file;
}
