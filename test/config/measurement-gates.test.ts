/** The measurement settings of the idle-baseline gate: defaults shared with the worker, bad values rejected. */
import { describe, expect, it } from 'vitest';
import { ExperimentConfig, Measurement } from '../../src/config/experiment.js';

describe('baseline gate settings', () => {
  it('default to a 60 s extension limit and 5 % CV / drift (the worker applies the same defaults)', () => {
    const m = Measurement.parse({});
    expect(m).toMatchObject({ idle_baseline_s: 10, idle_baseline_max_s: 60, baseline_max_cv: 0.05, baseline_max_drift: 0.05 });
    const e = ExperimentConfig.parse({ backend: 'calibration', measurement: { baseline_max_cv: 0.1 } });
    expect(e.measurement.baseline_max_cv).toBe(0.1);
    expect(e.measurement.idle_baseline_max_s).toBe(60);
  });

  it('rejects non-positive thresholds and a negative limit, naming the field', () => {
    for (const [key, value] of [['baseline_max_cv', 0], ['baseline_max_drift', -0.1], ['idle_baseline_max_s', -1]] as const) {
      const r = Measurement.safeParse({ [key]: value });
      expect(r.success, key).toBe(false);
      if (!r.success) expect(r.error.issues[0]?.path).toEqual([key]);
    }
  });
});
