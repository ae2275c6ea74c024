/**
 * The end-of-campaign summary: per experiment, the main metrics across cycles
 * (mean, std, CV, seeded bootstrap 95 % CI). Pure.
 */
import { describe, type Description } from './stats.js';

/** The metrics shown first for each backend, in order; others follow alphabetically in full reports. */
export const MAIN_METRICS: Record<string, readonly string[]> = {
  calibration: ['flops_per_s', 'duration_s', 'energy_total_j', 'power_mean_w'],
  pytorch: ['output_tokens_per_s', 'j_per_output_token', 'energy_gpu_adjusted_j', 'latency_p50_s', 'ttft_mean_s'],
  vllm: ['output_tokens_per_s', 'j_per_output_token', 'energy_gpu_adjusted_j', 'latency_p50_s', 'ttft_mean_s'],
  tensorrt: ['output_tokens_per_s', 'j_per_output_token', 'energy_gpu_adjusted_j', 'latency_p50_s', 'ttft_mean_s'],
};

export interface SummaryExperiment {
  id: string;
  name: string;
  backend: string;
}
export interface SummaryRun {
  experimentId: string;
  status: string;
  metrics: Record<string, number | null> | null;
}

export interface SummaryRow {
  experimentId: string;
  name: string;
  metric: string;
  succeeded: number;
  runs: number;
  /** null when no succeeded run measured this metric (the reason is in each run's result). */
  stats: Description | null;
}

export function summarize(
  experiments: readonly SummaryExperiment[],
  runs: readonly SummaryRun[],
  opts: { seed: number; resamples?: number },
): SummaryRow[] {
  const rows: SummaryRow[] = [];
  for (const e of experiments) {
    const mine = runs.filter((r) => r.experimentId === e.id);
    const ok = mine.filter((r) => r.status === 'succeeded' && r.metrics);
    for (const metric of MAIN_METRICS[e.backend] ?? []) {
      const values = ok.map((r) => r.metrics?.[metric]).filter((v): v is number => typeof v === 'number');
      rows.push({
        experimentId: e.id,
        name: e.name,
        metric,
        succeeded: ok.length,
        runs: mine.length,
        stats: describe(values, { seed: `${opts.seed}:${e.id}:${metric}`, ...(opts.resamples !== undefined ? { resamples: opts.resamples } : {}) }),
      });
    }
  }
  return rows;
}
