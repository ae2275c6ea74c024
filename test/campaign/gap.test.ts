/** Adaptive thermal gaps against a fake clock and a fake thermal source (an exponential cooling curve). */
import { describe, expect, it } from 'vitest';
import { nominalGapS, waitThermalGap } from '../../src/campaign/gap.js';
import { ThermalGap } from '../../src/config/campaign.js';
import type { ThermalReading } from '../../src/runtime/types.js';
import type { Clock } from '../../src/util/clock.js';

function fakeClock(): Clock & { t: () => number } {
  let t = 0;
  return {
    t: () => t,
    now: () => new Date(Date.UTC(2026, 0, 1) + t),
    monotonicMs: () => t,
    sleep: async (ms) => {
      t += ms;
    },
  };
}

/** Fake GPU cooling from 80 °C / 300 W towards 35 °C / 70 W with a 20 s time constant. */
const cooling = (clock: { t: () => number }) => async (): Promise<ThermalReading> => {
  const s = clock.t() / 1000;
  return { gpus: [{ index: 0, temp_c: 35 + 45 * Math.exp(-s / 20), power_w: 70 + 230 * Math.exp(-s / 5) }], reason: null };
};
const idle = { idle_temp_c: 35, idle_power_w: 70, file: 'cal.json' };
const gap = (g: unknown) => ThermalGap.parse(g);
const signal = new AbortController().signal;

describe('thermal gap', () => {
  it('waits until within D °C of idle, reading the sensor as it cools', async () => {
    const clock = fakeClock();
    const r = await waitThermalGap(gap({ min_s: 5, max_s: 300, within_c_of_idle: 2 }), idle, cooling(clock), clock, signal);
    // 45·e^(−t/20) ≤ 2 ⇔ t ≥ 20·ln(22.5) ≈ 62.3 s; polled every second.
    expect(r.reason).toBe('reached');
    expect(r.waited_s).toBeGreaterThanOrEqual(62.3);
    expect(r.waited_s).toBeLessThan(64);
    expect(r.start_temp_c).toBeCloseTo(80);
    expect(r.end_temp_c as number).toBeLessThanOrEqual(37);
    expect(r.target_temp_c).toBe(37);
  });

  it('never less than min_s, even when already cool', async () => {
    const clock = fakeClock();
    const cold = async (): Promise<ThermalReading> => ({ gpus: [{ index: 0, temp_c: 30, power_w: 60 }], reason: null });
    const r = await waitThermalGap(gap({ min_s: 7, max_s: 60, until_temp_c: 50 }), undefined, cold, clock, signal);
    expect(r).toMatchObject({ reason: 'reached', waited_s: 7 });
  });

  it('never more than max_s', async () => {
    const clock = fakeClock();
    const r = await waitThermalGap(gap({ min_s: 0, max_s: 10, until_temp_c: 40 }), undefined, cooling(clock), clock, signal);
    expect(r.reason).toBe('max_reached');
    expect(r.waited_s).toBe(10);
    expect(r.end_temp_c as number).toBeGreaterThan(40);
  });

  it('power_within_w_of_idle also waits for power', async () => {
    const clock = fakeClock();
    // Temperature target is met at once (until 90 °C); power 230·e^(−t/5) ≤ 10 needs t ≥ 5·ln(23) ≈ 15.7 s.
    const r = await waitThermalGap(gap({ min_s: 0, max_s: 100, until_temp_c: 90, power_within_w_of_idle: 10 }), idle, cooling(clock), clock, signal);
    expect(r.reason).toBe('reached');
    expect(r.waited_s).toBeGreaterThanOrEqual(15.6);
    expect(r.waited_s).toBeLessThan(17);
  });

  it('without a sensor the fixed min_s applies and the reason says so', async () => {
    const clock = fakeClock();
    const none = async (): Promise<ThermalReading> => ({ gpus: [], reason: 'no NVML: pynvml not installed' });
    const r = await waitThermalGap(gap({ min_s: 12, max_s: 100, within_c_of_idle: 2 }), idle, none, clock, signal);
    expect(r).toMatchObject({ reason: 'no_sensor', waited_s: 12, start_temp_c: null, detail: 'no NVML: pynvml not installed' });
    const r2 = await waitThermalGap(gap({ min_s: 3, max_s: 100, until_temp_c: 40 }), undefined, null, fakeClock(), signal);
    expect(r2).toMatchObject({ reason: 'no_sensor', waited_s: 3 });
  });

  it('the number form is a fixed wait; nominal gap for the ETA', async () => {
    const clock = fakeClock();
    expect(await waitThermalGap(gap(9), undefined, null, clock, signal)).toMatchObject({ reason: 'fixed', waited_s: 9 });
    expect(nominalGapS(gap(9))).toBe(9);
    expect(nominalGapS(gap({ min_s: 4, max_s: 20, until_temp_c: 50 }))).toBe(4);
  });

  it('the mapping form needs exactly one target and max_s ≥ min_s', () => {
    expect(ThermalGap.safeParse({ min_s: 1, max_s: 5 }).success).toBe(false);
    expect(ThermalGap.safeParse({ min_s: 1, max_s: 5, until_temp_c: 40, within_c_of_idle: 2 }).success).toBe(false);
    expect(ThermalGap.safeParse({ min_s: 10, max_s: 5, until_temp_c: 40 }).success).toBe(false);
  });
});

describe('the worker thermal reading', () => {
  it('is validated: a reading, a no-sensor reason, or the reason it is not one', async () => {
    const { parseThermal } = await import('../../src/campaign/gap.js');
    expect(parseThermal('noise\n{"gpus": [{"index": 0, "temp_c": 41.5, "power_w": null}], "reason": null}\n')).toEqual({ gpus: [{ index: 0, temp_c: 41.5, power_w: null }], reason: null });
    expect(parseThermal('{"gpus": [], "reason": "no NVML"}')).toEqual({ gpus: [], reason: 'no NVML' });
    expect(parseThermal('{"gpus": [{"index": "zero"}], "reason": null}').reason).toMatch(/unexpected reading/);
    expect(parseThermal('Traceback').reason).toMatch(/no JSON/);
  });
});
