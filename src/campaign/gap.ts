/**
 * The thermal gap before a run. Number form: a fixed wait. Mapping form: poll the next run's
 * GPU(s) through the worker in its service until the temperature (and optionally power) is back
 * near the calibrated idle, never less than min_s nor more than max_s. Without a sensor the fixed
 * min_s applies and the reason says so.
 */
import { z } from 'zod';
import type { IdleReference, ThermalGap } from '../config/campaign.js';
import type { ThermalReading } from '../runtime/types.js';
import type { Clock } from '../util/clock.js';

export interface GapRecord {
  waited_s: number;
  start_temp_c: number | null;
  end_temp_c: number | null;
  target_temp_c: number | null;
  reason: 'fixed' | 'reached' | 'max_reached' | 'no_sensor' | 'interrupted';
  /** Why there was no sensor reading, when reason is no_sensor. */
  detail: string | null;
}

/** What `python3 -m lem_worker thermal --json` prints (validated, never trusted as cast). */
export const WorkerThermal = z.object({
  gpus: z.array(z.object({ index: z.number().int(), temp_c: z.number().nullable(), power_w: z.number().nullable() })),
  reason: z.string().nullable(),
});

/** Parses the thermal probe's last output line; a reading with the reason when it is not one. */
export function parseThermal(stdout: string): ThermalReading {
  try {
    const parsed = WorkerThermal.safeParse(JSON.parse(stdout.trim().split('\n').pop() ?? ''));
    if (parsed.success) return parsed.data;
    return { gpus: [], reason: `the worker's thermal probe printed an unexpected reading: ${parsed.error.issues[0]?.message ?? ''}` };
  } catch {
    return { gpus: [], reason: `the worker's thermal probe printed no JSON: ${stdout.slice(0, 200)}` };
  }
}

/** Reads the next run's GPUs; null when the runtime cannot (no worker tool). */
export type ThermalSource = (() => Promise<ThermalReading>) | null;

const hottest = (r: ThermalReading): number | null => {
  const temps = r.gpus.flatMap((g) => (g.temp_c === null ? [] : [g.temp_c]));
  return temps.length ? Math.max(...temps) : null;
};
const highestPower = (r: ThermalReading): number | null => {
  const p = r.gpus.flatMap((g) => (g.power_w === null ? [] : [g.power_w]));
  return p.length ? Math.max(...p) : null;
};

/** The seconds a gap is expected to take before it is measured (for the ETA). */
export function nominalGapS(gap: ThermalGap): number {
  return typeof gap === 'number' ? gap : gap.min_s;
}

export async function waitThermalGap(
  gap: ThermalGap,
  idle: IdleReference | undefined,
  source: ThermalSource,
  clock: Clock,
  signal: AbortSignal,
  pollMs = 1000,
): Promise<GapRecord> {
  const t0 = clock.monotonicMs();
  const elapsedS = (): number => (clock.monotonicMs() - t0) / 1000;
  const rec = (reason: GapRecord['reason'], start: number | null, end: number | null, target: number | null, detail: string | null = null): GapRecord => ({
    waited_s: Math.round(elapsedS() * 1000) / 1000,
    start_temp_c: start,
    end_temp_c: end,
    target_temp_c: target,
    reason: signal.aborted ? 'interrupted' : reason,
    detail,
  });
  if (typeof gap === 'number') {
    await clock.sleep(gap * 1000, signal);
    return rec('fixed', null, null, null);
  }
  const noSensor = async (detail: string, start: number | null = null): Promise<GapRecord> => {
    await clock.sleep(Math.max(0, gap.min_s - elapsedS()) * 1000, signal);
    return rec('no_sensor', start, null, null, detail);
  };
  if (!source) return noSensor('this runtime cannot read GPU sensors');
  const read = async (): Promise<ThermalReading> => {
    try {
      return await source();
    } catch (e) {
      return { gpus: [], reason: `the thermal probe failed: ${(e as Error).message}` };
    }
  };
  let reading = await read();
  const start = hottest(reading);
  if (start === null) return noSensor(reading.reason ?? 'the worker reported no GPU temperature');
  const target = gap.until_temp_c ?? (idle?.idle_temp_c != null && gap.within_c_of_idle !== undefined ? idle.idle_temp_c + gap.within_c_of_idle : null);
  if (target === null) return noSensor(`the calibration file ${idle?.file ?? ''} has no idle temperature`, start);
  const powerTarget = gap.power_within_w_of_idle !== undefined && idle?.idle_power_w != null ? idle.idle_power_w + gap.power_within_w_of_idle : null;
  for (;;) {
    const temp = hottest(reading);
    const power = highestPower(reading);
    const reached = temp !== null && temp <= target && (powerTarget === null || (power !== null && power <= powerTarget));
    const t = elapsedS();
    if (signal.aborted) return rec('interrupted', start, temp, target);
    if (reached && t >= gap.min_s) return rec('reached', start, temp, target);
    if (t >= gap.max_s) return rec('max_reached', start, temp, target);
    const untilMin = reached ? gap.min_s - t : Infinity;
    await clock.sleep(Math.min(pollMs, (gap.max_s - t) * 1000, untilMin * 1000), signal);
    reading = await read();
  }
}
