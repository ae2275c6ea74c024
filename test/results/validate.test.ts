/** The validation verdict and exit-code logic over compare.ts's comparisons (pure). */
import { describe, expect, it } from 'vitest';
import { compareRunSets } from '../../src/results/compare.js';
import { classTolerances, parseTolerancePercent, summariseValidation, validationExitCode } from '../../src/results/validate.js';
import { run } from './helpers.js';

const side = (id: string, values: number[], metric = 'energy_gpu_j') => values.map((v, i) => run(`${id}${i}`, id, i + 1, { [metric]: v }));

describe('validation summary', () => {
  it('energy tolerance covers both energy classes; throughput and latency their own', () => {
    expect(classTolerances({ energy: 0.02, latency: 0.2 })).toEqual({ gpu_energy: 0.02, total_energy: 0.02, latency: 0.2 });
  });

  it('outside beats inconclusive; nothing comparable is inconclusive; --fail-on outside tolerates inconclusive', () => {
    const within = summariseValidation(compareRunSets(side('a', [100, 100.2, 99.8, 100.1]), side('b', [100.3, 100.1, 100.2, 99.9]), { seed: 1, resamples: 2000 }));
    expect(within.outcome).toBe('within');
    expect(validationExitCode(within)).toBe(0);
    const outside = summariseValidation(compareRunSets(side('a', [100, 100.2, 99.8, 100.1]), side('b', [130, 130.1, 129.9, 130.2]), { seed: 1, resamples: 2000 }));
    expect(outside.outcome).toBe('outside');
    expect(validationExitCode(outside)).toBe(1);
    const nothing = summariseValidation(compareRunSets(side('a', [1, 2], 'gpu_temp_end_c'), side('b', [1, 2], 'gpu_temp_end_c')));
    expect(nothing.outcome).toBe('inconclusive');
    expect(nothing.metrics).toEqual([]);
    expect(validationExitCode(nothing)).toBe(3);
    expect(validationExitCode(nothing, 'outside')).toBe(0);
    // a metric with a tolerance measured on one side only is listed, not silently dropped
    const oneSided = summariseValidation(compareRunSets(side('a', [100, 101]), side('b', [1, 2], 'energy_gpu_j').map((r) => ({ ...r, metrics: { energy_gpu_j: null } }))));
    expect(oneSided.not_compared).toEqual(['energy_gpu_j']);
  });

  it('parses percentages', () => {
    expect(parseTolerancePercent('--x', '5')).toBe(0.05);
    expect(parseTolerancePercent('--x', '2.5%')).toBe(0.025);
    expect(parseTolerancePercent('--x', '0')).toMatch(/--x takes a percentage/);
    expect(parseTolerancePercent('--x', '-3')).toMatch(/--x/);
  });
});
