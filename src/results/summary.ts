/**
 * The end-of-campaign summary: per experiment, the main metrics of its backend across cycles
 * (mean, std, CV, the headline 95 % CI of the interval policy — Student t — and the few-cycles note),
 * from the same late aggregation as `lem results show`. `intervalNotes` and `CI_METHOD_LABEL` are
 * what every printer (summary, `results show`, `report`, `compare`) says about its intervals.
 */
import { aggregate, countRuns, type Aggregation, type ExperimentAggregate, type ExperimentRecord, type GroupBy, type RunRecord } from './aggregate.js';
import { fewCyclesNote, FEW_CYCLES_N, BOOTSTRAP_MIN_N, type BootstrapMethod, type Description, type HeadlineMethod } from './stats.js';

/** How each interval is named in printed output. */
export const CI_METHOD_LABEL: Readonly<Record<HeadlineMethod | BootstrapMethod | 'welch_t' | 'fieller', string>> = {
  t: 'Student t',
  bca: 'BCa bootstrap',
  percentile: 'percentile bootstrap',
  welch_t: 'Welch t',
  fieller: 'Fieller',
};

/** One line stating the interval policy, for printed output. */
export function intervalPolicyLine(bootstrapShown: BootstrapMethod | null): string {
  return (
    `intervals: 95 % ${CI_METHOD_LABEL.t} CI of the mean (holds its coverage at every n for roughly normal noise)` +
    (bootstrapShown
      ? `; the ${CI_METHOD_LABEL[bootstrapShown]} interval is shown as well (secondary; it under-covers below ${BOOTSTRAP_MIN_N} cycles)`
      : `; a BCa bootstrap interval is added from ${BOOTSTRAP_MIN_N} cycles on (--method bca|percentile to see it at any n)`)
  );
}

/** A metric's description as a printer shows it. */
export interface ShownInterval {
  metric: string;
  d: Description | null | undefined;
}

/**
 * What a printer says under the intervals it shows: the few-cycles note once per distinct n below
 * FEW_CYCLES_N, then the below-zero note when an interval reaches below 0 (belowZeroNote).
 */
export function intervalNotes(shown: readonly ShownInterval[]): string[] {
  const ns = [...new Set(shown.flatMap(({ d }) => (d && d.n < FEW_CYCLES_N ? [d.n] : [])))].sort((a, b) => a - b);
  const belowZero = belowZeroNote(shown);
  return [...ns.map((n) => fewCyclesNote(n)).filter((s): s is string => s !== null), ...(belowZero ? [belowZero] : [])];
}

/**
 * A note for intervals whose lower bound is below 0 although every value is positive (energy,
 * throughput, latency: quantities that cannot be negative): the spread is too wide for n to bound
 * the mean away from zero. The bound stays as computed (clamping it would hide the width); the note
 * says how to read it. Null when no such interval is shown.
 */
export function belowZeroNote(shown: readonly ShownInterval[]): string | null {
  const hit = shown.filter((s): s is { metric: string; d: Description } => !!s.d && s.d.ci95 !== null && s.d.ci95.low < 0 && s.d.min > 0);
  if (hit.length === 0) return null;
  const names = [...new Set(hit.map((h) => h.metric))];
  const cvs = hit.map((h) => h.d.cv).filter((c): c is number => c !== null);
  const ns = [...new Set(hit.map((h) => h.d.n))].sort((a, b) => a - b);
  return (
    `the interval of ${names.join(', ')} reaches below 0 although every value is positive: the run-to-run spread` +
    `${cvs.length ? ` (CV up to ${(Math.max(...cvs) * 100).toFixed(0)} %)` : ''} is too wide for n = ${ns.join(', ')} to bound the mean away from zero; ` +
    'the bound is printed as computed, and since the quantity cannot be negative, read it as [0, high].'
  );
}

/** The metrics shown first for each backend, in order. */
export const MAIN_METRICS: Record<string, readonly string[]> = {
  calibration: ['flops_per_s', 'duration_s', 'energy_total_j', 'power_mean_w'],
  pytorch: ['output_tokens_per_s', 'j_per_output_token', 'energy_gpu_adjusted_j', 'latency_p50_s', 'ttft_mean_s'],
  vllm: ['output_tokens_per_s', 'j_per_output_token', 'energy_gpu_adjusted_j', 'latency_p50_s', 'ttft_mean_s'],
  tensorrt: ['output_tokens_per_s', 'j_per_output_token', 'energy_gpu_adjusted_j', 'latency_p50_s', 'ttft_mean_s'],
};

/** The metrics shown first for a served model (vllm.endpoint / vllm.mode server): rate, energy, latency percentiles. */
export const SERVING_METRICS: readonly string[] = [
  'achieved_rate_rps',
  'output_tokens_per_s',
  'j_per_output_token',
  'j_per_request',
  'ttft_p50_s',
  'ttft_p99_s',
  'itl_p50_s',
  'tpot_p50_s',
  'e2e_p50_s',
  'e2e_p99_s',
  'failed_requests',
];

/** A serving experiment's aggregate has the achieved request rate (only the serving worker writes it). */
function isServingAggregate(metrics: Readonly<Record<string, { description: Description | null } | undefined>> | undefined): boolean {
  return metrics?.['achieved_rate_rps']?.description != null;
}

/**
 * How an aggregate is named in printed output: its name, the GPU model its runs ran on when known
 * (`name @ NVIDIA H100`), or the models it pooled (`group_by: none`).
 */
export function aggregateLabel(e: Pick<ExperimentAggregate, 'experimentId' | 'name' | 'gpuModel' | 'pooledGpuModels'>): string {
  const name = e.name ?? e.experimentId;
  if (e.pooledGpuModels.length > 1) return `${name} @ pooled across ${e.pooledGpuModels.join(', ')}`;
  return e.gpuModel ? `${name} @ ${e.gpuModel}` : name;
}

/** A note for printed output when an aggregate pooled runs of different GPU models. */
export function pooledNotes(experiments: readonly ExperimentAggregate[]): string[] {
  return experiments
    .filter((e) => e.pooledGpuModels.length > 1)
    .map((e) => `${e.name ?? e.experimentId} pools runs on ${e.pooledGpuModels.length} GPU models (${e.pooledGpuModels.join(', ')}) because placement.group_by is none`);
}

export interface SummaryRow {
  experimentId: string;
  /** The aggregate's label: the experiment's name, with its GPU model when known (see aggregateLabel). */
  name: string;
  gpuModel: string | null;
  pooledGpuModels: string[];
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

export function mainMetrics(agg: Aggregation, backend: string | null, metrics?: Aggregation['experiments'][number]['metrics']): string[] {
  if (backend === 'vllm' && isServingAggregate(metrics)) return [...SERVING_METRICS];
  return [...(MAIN_METRICS[backend ?? ''] ?? agg.metricNames)];
}

export function summarize(experiments: readonly ExperimentRecord[], runs: readonly RunRecord[], opts: { seed: number; groupBy?: GroupBy }): SummaryRow[] {
  const metrics = [...new Set(experiments.flatMap((e) => [...(MAIN_METRICS[e.backend] ?? []), ...(e.backend === 'vllm' ? SERVING_METRICS : [])]))];
  const agg = aggregate(runs, experiments, { seed: opts.seed, metrics, ...(opts.groupBy ? { groupBy: opts.groupBy } : {}) });
  return agg.experiments.flatMap((e) =>
    mainMetrics(agg, e.backend, e.metrics).map((metric) => {
      const stats = e.metrics[metric]?.description ?? null;
      const mine = runs.filter((r) => r.experimentId === e.experimentId && r.status === 'succeeded' && (e.gpuModel === null || r.gpuModel === e.gpuModel));
      return {
        experimentId: e.experimentId,
        name: aggregateLabel(e),
        gpuModel: e.gpuModel,
        pooledGpuModels: e.pooledGpuModels,
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
