/**
 * The rows a results sink receives, built purely from a campaign's records (no I/O):
 *   run rows         one per finished run (succeeded, failed, interrupted): identity, status, flags,
 *                    the measured metrics as parallel name/value arrays, the names of metrics that
 *                    were not measured, a few headline metrics as nullable columns, and `row_hash`
 *                    (SHA-256 of the row's content) so a re-push of an unchanged run is recognised.
 *   aggregate rows   one per experiment (and GPU model, when its runs ran on more than one and the
 *                    campaign does not pool them; `experiment_name` then says `name @ MODEL`) × metric: n, mean, median, std, cv, min, max over the runs the
 *                    late aggregation used (flag policy as `results show`).
 * Emission metrics are included when the caller added them (carbon.ts), never stored in raw results.
 */
import { createHash } from 'node:crypto';
import { aggregate, type ExperimentRecord, type GroupBy, type RunRecord } from '../aggregate.js';
import { aggregateLabel } from '../summary.js';

export const HEADLINE_METRICS = ['energy_total_j', 'energy_gpu_j', 'output_tokens_per_s', 'j_per_output_token', 'latency_p50_s', 'emissions_g'] as const;
export type HeadlineMetric = (typeof HEADLINE_METRICS)[number];

export interface RunRow extends Record<HeadlineMetric, number | null> {
  run_id: string;
  campaign_id: string;
  campaign_name: string;
  experiment_id: string;
  experiment_name: string;
  backend: string;
  cycle: number;
  status: string;
  flags: string[];
  metric_names: string[];
  metric_values: number[];
  unmeasured: string[];
  row_hash: string;
}

export interface AggregateRow {
  campaign_id: string;
  experiment_id: string;
  experiment_name: string;
  backend: string;
  metric: string;
  runs_used: number;
  n: number;
  mean: number;
  median: number;
  std: number | null;
  cv: number | null;
  min: number;
  max: number;
  row_hash: string;
}

export interface CampaignForPush {
  campaignId: string;
  name: string;
  seed: number;
  experiments: readonly ExperimentRecord[];
  runs: readonly RunRecord[];
  groupBy?: GroupBy;
}

function hash(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex');
}

const FINISHED = new Set(['succeeded', 'failed', 'interrupted']);

export function runRows(c: CampaignForPush): RunRow[] {
  const meta = new Map(c.experiments.map((e) => [e.id, e]));
  return c.runs
    .filter((r) => FINISHED.has(r.status))
    .map((r) => {
      const names: string[] = [];
      const values: number[] = [];
      const unmeasured: string[] = [];
      for (const k of Object.keys(r.metrics).sort()) {
        const v = r.metrics[k];
        if (typeof v === 'number' && Number.isFinite(v)) {
          names.push(k);
          values.push(v);
        } else unmeasured.push(k);
      }
      const e = meta.get(r.experimentId);
      const headline = Object.fromEntries(HEADLINE_METRICS.map((h) => [h, typeof r.metrics[h] === 'number' && Number.isFinite(r.metrics[h]) ? (r.metrics[h] as number) : null])) as Record<HeadlineMetric, number | null>;
      const body = {
        run_id: r.runId,
        campaign_id: c.campaignId,
        campaign_name: c.name,
        experiment_id: r.experimentId,
        experiment_name: e?.name ?? r.experimentId,
        backend: e?.backend ?? '',
        cycle: r.cycle,
        status: r.status,
        flags: [...r.flags].sort(),
        metric_names: names,
        metric_values: values,
        unmeasured,
        ...headline,
      };
      return { ...body, row_hash: hash(body) };
    });
}

export function aggregateRows(c: CampaignForPush): AggregateRow[] {
  const agg = aggregate(c.runs, c.experiments, { seed: c.seed, resamples: 100, ...(c.groupBy ? { groupBy: c.groupBy } : {}) });
  const rows: AggregateRow[] = [];
  for (const e of agg.experiments) {
    for (const metric of Object.keys(e.metrics).sort()) {
      const d = e.metrics[metric]?.description;
      if (!d) continue;
      const body = {
        campaign_id: c.campaignId,
        experiment_id: e.experimentId,
        experiment_name: aggregateLabel(e),
        backend: e.backend ?? '',
        metric,
        runs_used: e.counts.used,
        n: d.n,
        mean: d.mean,
        median: d.median,
        std: d.std,
        cv: d.cv,
        min: d.min,
        max: d.max,
      };
      rows.push({ ...body, row_hash: hash(body) });
    }
  }
  return rows;
}
