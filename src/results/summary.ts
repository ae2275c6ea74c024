/**
 * The end-of-campaign summary: per experiment, the main metrics of its backend across cycles
 * (mean, std, CV, seeded bootstrap 95 % CI), from the same late aggregation as `lem results show`.
 */
import { aggregate, countRuns, type Aggregation, type ExperimentRecord, type RunRecord } from './aggregate.js';
import type { Description } from './stats.js';

/** The metrics shown first for each backend, in order. */
export const MAIN_METRICS: Record<string, readonly string[]> = {
  calibration: ['flops_per_s', 'duration_s', 'energy_total_j', 'power_mean_w'],
  pytorch: ['output_tokens_per_s', 'j_per_output_token', 'energy_gpu_adjusted_j', 'latency_p50_s', 'ttft_mean_s'],
  vllm: ['output_tokens_per_s', 'j_per_output_token', 'energy_gpu_adjusted_j', 'latency_p50_s', 'ttft_mean_s'],
  tensorrt: ['output_tokens_per_s', 'j_per_output_token', 'energy_gpu_adjusted_j', 'latency_p50_s', 'ttft_mean_s'],
};

export interface SummaryRow {
  experimentId: string;
  name: string;
  metric: string;
  runs: number;
  /** null when no succeeded run measured this metric. */
  stats: Description | null;
  /** Why it was not measured, from the runs' results (`unmeasured`), when stats is null. */
  reason: string | null;
}

/** The worker's recorded reason for a null metric, from the first loaded result that has one. */
function unmeasuredReason(runs: readonly RunRecord[], metric: string): string | null {
  for (const r of runs) {
    const unmeasured = (r.result as { unmeasured?: Record<string, unknown> } | undefined)?.unmeasured;
    const reason = unmeasured?.[metric];
    if (typeof reason === 'string') return reason;
  }
  return null;
}

export function mainMetrics(agg: Aggregation, backend: string | null): string[] {
  return [...(MAIN_METRICS[backend ?? ''] ?? agg.metricNames)];
}

export function summarize(experiments: readonly ExperimentRecord[], runs: readonly RunRecord[], opts: { seed: number }): SummaryRow[] {
  const metrics = [...new Set(experiments.flatMap((e) => MAIN_METRICS[e.backend] ?? []))];
  const agg = aggregate(runs, experiments, { seed: opts.seed, metrics });
  return agg.experiments.flatMap((e) =>
    mainMetrics(agg, e.backend).map((metric) => {
      const stats = e.metrics[metric]?.description ?? null;
      const mine = runs.filter((r) => r.experimentId === e.experimentId && r.status === 'succeeded');
      return {
        experimentId: e.experimentId,
        name: e.name ?? e.experimentId,
        metric,
        runs: e.counts.total,
        stats,
        reason: stats === null ? unmeasuredReason(mine, metric) : null,
      };
    }),
  );
}

/** Flagged succeeded runs of a campaign, in all and per validation gate (every flag counts, none dropped). */
export function flagCounts(runs: readonly RunRecord[]): { flagged: number; byGate: Record<string, number> } {
  const c = countRuns(runs, true);
  return { flagged: c.flagged, byGate: c.flaggedByGate };
}
