/**
 * The end-of-campaign summary: per experiment, the main metrics of its backend across cycles
 * (mean, std, CV, seeded bootstrap 95 % CI), from the same late aggregation as `lem results show`.
 */
import { aggregate, type Aggregation, type ExperimentRecord, type RunRecord } from './aggregate.js';
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
  /** null when no succeeded run measured this metric (the reason is in each run's result). */
  stats: Description | null;
}

export function mainMetrics(agg: Aggregation, backend: string | null): string[] {
  return [...(MAIN_METRICS[backend ?? ''] ?? agg.metricNames)];
}

export function summarize(experiments: readonly ExperimentRecord[], runs: readonly RunRecord[], opts: { seed: number }): SummaryRow[] {
  const metrics = [...new Set(experiments.flatMap((e) => MAIN_METRICS[e.backend] ?? []))];
  const agg = aggregate(runs, experiments, { seed: opts.seed, metrics });
  return agg.experiments.flatMap((e) =>
    mainMetrics(agg, e.backend).map((metric) => ({
      experimentId: e.experimentId,
      name: e.name ?? e.experimentId,
      metric,
      runs: e.counts.total,
      stats: e.metrics[metric]?.description ?? null,
    })),
  );
}
