/** The tolerance flags shared by `lem validate` and `lem results compare` (percent → fractions per class). */
import type { MetricClass } from '../../results/compare.js';
import { classTolerances, parseTolerancePercent, type ToleranceGroup } from '../../results/validate.js';
import { LemError } from '../../util/errors.js';

export interface ToleranceCli {
  energyTolerance?: string;
  throughputTolerance?: string;
  latencyTolerance?: string;
}

export function tolerancesFromCli(o: ToleranceCli): Partial<Record<MetricClass, number>> {
  const groups: Partial<Record<ToleranceGroup, number>> = {};
  const flags: [ToleranceGroup, string, string | undefined][] = [
    ['energy', '--energy-tolerance', o.energyTolerance],
    ['throughput', '--throughput-tolerance', o.throughputTolerance],
    ['latency', '--latency-tolerance', o.latencyTolerance],
  ];
  for (const [g, flag, text] of flags) {
    if (text === undefined) continue;
    const v = parseTolerancePercent(flag, text);
    if (typeof v === 'string') throw new LemError(v);
    groups[g] = v;
  }
  return classTolerances(groups);
}
