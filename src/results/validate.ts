/**
 * Validation of B against A (the backend-switching design's "same numbers within tolerance" gate),
 * on top of compare.ts's per-metric ratio, interval and verdict.
 *
 * Tolerances come in three user-facing groups (percent on the command line, fractions here):
 *   energy      → compare's gpu_energy and total_energy classes   (default ±5 %)
 *   throughput  → throughput                                     (default ±10 %)
 *   latency     → latency                                        (default ±10 %)
 * The overall outcome: `outside` when any metric's interval lies wholly outside its band, else
 * `inconclusive` when any interval straddles a bound (or no metric could be compared at all), else
 * `within`. Exit codes: within 0, outside 1, inconclusive 3. `results compare` uses the same
 * logic only with `--fail-on` (outside: only `outside` fails; inconclusive: both fail).
 * Pure: no I/O.
 */
import { DEFAULT_TOLERANCES, type Comparison, type MetricClass, type VerdictStatus } from './compare.js';
import type { Interval } from './stats.js';

export const EXIT_WITHIN = 0;
export const EXIT_OUTSIDE = 1;
export const EXIT_INCONCLUSIVE = 3;

export type ToleranceGroup = 'energy' | 'throughput' | 'latency';
export const TOLERANCE_GROUPS: Readonly<Record<ToleranceGroup, readonly MetricClass[]>> = {
  energy: ['gpu_energy', 'total_energy'],
  throughput: ['throughput'],
  latency: ['latency'],
};

/** Defaults, as fractions: energy ±5 %, throughput and latency ±10 % (compare.ts's classes). */
export const DEFAULT_GROUP_TOLERANCES: Readonly<Record<ToleranceGroup, number>> = {
  energy: DEFAULT_TOLERANCES.gpu_energy,
  throughput: DEFAULT_TOLERANCES.throughput,
  latency: DEFAULT_TOLERANCES.latency,
};

/** Per-class tolerances (fractions) for compare.ts from group tolerances (fractions). */
export function classTolerances(groups: Partial<Record<ToleranceGroup, number>>): Partial<Record<MetricClass, number>> {
  const out: Partial<Record<MetricClass, number>> = {};
  for (const [g, classes] of Object.entries(TOLERANCE_GROUPS) as [ToleranceGroup, readonly MetricClass[]][]) {
    const t = groups[g];
    if (t !== undefined) for (const c of classes) out[c] = t;
  }
  return out;
}

export type Outcome = VerdictStatus;

export interface ValidatedMetric {
  metric: string;
  class: MetricClass;
  n_a: number;
  n_b: number;
  mean_a: number | null;
  mean_b: number | null;
  ratio: number | null;
  ratio_ci: Interval | null;
  tolerance: number;
  status: VerdictStatus;
  basis: 'ci' | 'point';
  text: string;
}

export interface ValidationSummary {
  outcome: Outcome;
  counts: { within: number; outside: number; inconclusive: number; not_compared: number };
  metrics: ValidatedMetric[];
  /** Metrics with a tolerance class that one side did not measure (no verdict possible). */
  not_compared: string[];
}

/** The overall verdict over every metric that has one. */
export function summariseValidation(cmp: Comparison): ValidationSummary {
  const metrics: ValidatedMetric[] = [];
  const notCompared: string[] = [];
  for (const m of cmp.metrics) {
    if (m.class === null) continue;
    if (!m.verdict) {
      if (m.a.mean !== null || m.b.mean !== null) notCompared.push(m.metric);
      continue;
    }
    metrics.push({
      metric: m.metric,
      class: m.class,
      n_a: m.a.n,
      n_b: m.b.n,
      mean_a: m.a.mean,
      mean_b: m.b.mean,
      ratio: m.ratio,
      ratio_ci: m.ratioCi,
      tolerance: m.verdict.tolerance,
      status: m.verdict.status,
      basis: m.verdict.basis,
      text: m.verdict.text,
    });
  }
  const count = (s: VerdictStatus): number => metrics.filter((m) => m.status === s).length;
  const counts = { within: count('within'), outside: count('outside'), inconclusive: count('inconclusive'), not_compared: notCompared.length };
  const outcome: Outcome = counts.outside > 0 ? 'outside' : counts.inconclusive > 0 || metrics.length === 0 ? 'inconclusive' : 'within';
  return { outcome, counts, metrics, not_compared: notCompared };
}

export type FailOn = 'outside' | 'inconclusive';

/** `lem validate`'s exit code (always strict), or `results compare --fail-on`'s. */
export function validationExitCode(summary: ValidationSummary, failOn: FailOn = 'inconclusive'): number {
  if (summary.outcome === 'outside') return EXIT_OUTSIDE;
  if (summary.outcome === 'inconclusive' && failOn === 'inconclusive') return EXIT_INCONCLUSIVE;
  return EXIT_WITHIN;
}

/** Parses a tolerance given in percent ("5", "5%", "2.5"): a fraction in (0, 10]. */
export function parseTolerancePercent(flag: string, text: string): number | string {
  const m = /^\s*(\d+(?:\.\d+)?)\s*%?\s*$/.exec(text);
  const v = m ? Number(m[1]) : NaN;
  if (!Number.isFinite(v) || v <= 0 || v > 1000) return `${flag} takes a percentage greater than 0 (e.g. 5 for ±5 %), got '${text}'.`;
  return v / 100;
}
