/**
 * The file `lem calibrate` writes and a campaign references with `calibration_file:`: what was
 * measured on this machine (null with the reason where it could not be) and the recommendation.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { LemError } from '../util/errors.js';

const Measured = z.object({ value: z.number().nullable(), reason: z.string().nullable() });

/** What the worker measures (`python3 -m lem_worker calibrate --json` prints exactly this). */
export const CalibrationMeasurements = z.object({
  idle_temp_c: Measured,
  idle_power_w: Measured,
  energy_counter_update_s: Measured,
  burn_s: z.number(),
  burn_peak_temp_c: Measured,
  time_to_idle_s: Measured,
});

export const CalibrationFile = CalibrationMeasurements.extend({
  schema_version: z.literal(1),
  created_at: z.string(),
  host: z.string(),
  runtime: z.enum(['local', 'docker', 'slurm']),
  gpus: z.array(z.number().int()).nullable(),
  recommendation: z.object({
    thermal_gap: z.union([z.number(), z.record(z.string(), z.number())]),
    min_window_s: z.number(),
    why: z.array(z.string()),
  }),
});
export type CalibrationFile = z.infer<typeof CalibrationFile>;

export function readCalibrationFile(path: string): CalibrationFile {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new LemError(`cannot read the calibration file ${path}: ${(e as Error).message}; write one with \`lem calibrate --out ${path}\`.`);
  }
  const parsed = CalibrationFile.safeParse(raw);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    throw new LemError(`${path} is not a lem calibration file (${first ? `${first.path.join('.')}: ${first.message}` : 'invalid'}); write one with \`lem calibrate --out ${path}\`.`);
  }
  return parsed.data;
}
