/**
 * Late aggregation: statistics are computed on demand from per-run records (never stored), so a
 * different seed, resample count, bootstrap method or flag policy can be applied at any time.
 *
 * Two views:
 * - per experiment across its cycles (the usual result: one row per configuration),
 * - per cycle across experiments (drift/thermal effects over a campaign's wall-clock order).
 *
 * Only runs with status 'succeeded' contribute values. Flagged runs (validation gates fired)
 * count by default; with `includeFlagged: false` they are excluded and the count is reported.
 * A metric that is null/absent in a used run is counted in `nullCount`, not imputed.
 *
 * Intervals follow the policy in intervals.ts: every description carries the headline `ci95`
 * (Student t, `ci_method: 't'`), its few-cycles note, and a bootstrap interval only from 30 values on
 * or when one is asked for (`method`/`bootstrap`).
 *
 * Randomness: each (view, group, metric) gets its own seed derived from `seed`, so adding an
 * experiment or a metric never changes another one's interval.
 */
import type { RunStatus } from '../manifest/manifest.js';
import { describe, type BootstrapMethod, type BootstrapWhen, type Description, DEFAULT_RESAMPLES, HEADLINE_METHOD, type HeadlineMethod } from './stats.js';

export { RUN_STATUSES, type RunStatus } from '../manifest/manifest.js';

export interface RunRecord {
  runId: string;
  experimentId: string;
  cycle: number;
  status: RunStatus;
  metrics: Record<string, number | null>;
  /** Validation gate names that fired; empty when clean. */
  flags: string[];
  resultPath: string | null;
  /** The parsed result JSON when loaded. */
  result?: unknown;
  /** The GPU model the run ran on (its placement, else the result's GPU names); null/absent when unknown. */
  gpuModel?: string | null;
}

/** `placement.group_by`: keep runs of different GPU models apart (default), or pool them ('none'). */
export type GroupBy = 'gpu_model' | 'none';

export interface ExperimentRecord {
  id: string;
  name: string;
  backend: string;
  config: unknown;
}

export interface AggregateOptions {
  /** Count runs whose validation gates fired; default true. */
  includeFlagged?: boolean;
  /** Seed for the bootstrap; default 'lem'. Pass the campaign's seed. */
  seed?: number | string;
  /** Bootstrap resamples; default 10 000. */
  resamples?: number;
  /** Secondary (bootstrap) interval method; default 'bca'. Giving it asks for the bootstrap at every n. */
  method?: BootstrapMethod;
  /** When to compute the bootstrap interval; default 'always' when `method` is given, else 'auto' (n ≥ 30). */
  bootstrap?: BootstrapWhen;
  /** Restrict to these metrics (default: every metric seen in a succeeded run). */
  metrics?: readonly string[];
  /** Split an experiment's runs by GPU model when they ran on more than one (default 'gpu_model'). */
  groupBy?: GroupBy;
}

export interface ResolvedAggregateOptions {
  includeFlagged: boolean;
  seed: number | string;
  resamples: number;
  method: BootstrapMethod;
  bootstrap: BootstrapWhen;
  /** The headline interval of every description ('t'). */
  ci_method: HeadlineMethod;
  groupBy: GroupBy;
}

export interface RunCounts {
  /** All run records in the group, any status. */
  total: number;
  succeeded: number;
  failed: number;
  interrupted: number;
  pending: number;
  running: number;
  /** Runs without a final result: interrupted + pending + running. */
  missing: number;
  /** Succeeded runs with at least one validation flag. */
  flagged: number;
  /** Flagged succeeded runs left out because includeFlagged is false. */
  flaggedExcluded: number;
  /** Succeeded runs per validation gate that fired (a run with two gates counts under both), keys sorted. */
  flaggedByGate: Record<string, number>;
  /** Runs whose values were used: succeeded, minus excluded flagged runs. */
  used: number;
}

export interface MetricPoint {
  runId: string;
  experimentId: string;
  cycle: number;
  value: number;
  flagged: boolean;
}

export interface MetricSummary {
  metric: string;
  /** Used runs where the metric was null, absent or not finite. */
  nullCount: number;
  /** Null when no used run has a value. */
  description: Description | null;
  /** The values behind `description`, in run order (by cycle, then run id). */
  points: MetricPoint[];
}

export interface ExperimentAggregate {
  experimentId: string;
  /** The GPU model of every run in this aggregate; null when unknown or pooled across models. */
  gpuModel: string | null;
  /** The GPU models pooled into this aggregate (`group_by: none`); empty unless more than one. */
  pooledGpuModels: string[];
  name: string | null;
  backend: string | null;
  counts: RunCounts;
  /** Cycles with at least one used run. */
  cycles: number[];
  /** Campaign cycles (seen in any run) in which this experiment has no succeeded run. */
  missingCycles: number[];
  metrics: Record<string, MetricSummary>;
}

export interface CycleAggregate {
  cycle: number;
  counts: RunCounts;
  /** Experiments with at least one used run in this cycle. */
  experimentIds: string[];
  /** Known experiments without a succeeded run in this cycle. */
  missingExperimentIds: string[];
  metrics: Record<string, MetricSummary>;
}

export interface Aggregation {
  options: ResolvedAggregateOptions;
  metricNames: string[];
  totals: RunCounts;
  experiments: ExperimentAggregate[];
  cycles: CycleAggregate[];
}

export function resolveOptions(opts: AggregateOptions = {}): ResolvedAggregateOptions {
  return {
    includeFlagged: opts.includeFlagged ?? true,
    seed: opts.seed ?? 'lem',
    resamples: opts.resamples ?? DEFAULT_RESAMPLES,
    method: opts.method ?? 'bca',
    bootstrap: opts.bootstrap ?? (opts.method ? 'always' : 'auto'),
    ci_method: HEADLINE_METHOD,
    groupBy: opts.groupBy ?? 'gpu_model',
  };
}

/** A finite number, or null for null/absent/NaN/±Infinity. */
export function metricValue(run: RunRecord, metric: string): number | null {
  const v = run.metrics[metric];
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

/** Sorted names of every metric present (even as null) in a succeeded run. */
export function collectMetricNames(runs: readonly RunRecord[]): string[] {
  const names = new Set<string>();
  for (const r of runs) {
    if (r.status !== 'succeeded') continue;
    for (const k of Object.keys(r.metrics)) names.add(k);
  }
  return [...names].sort();
}

export function isFlagged(run: RunRecord): boolean {
  return run.flags.length > 0;
}

/** Whether a run's values count under the flag policy. */
export function isUsed(run: RunRecord, includeFlagged: boolean): boolean {
  return run.status === 'succeeded' && (includeFlagged || !isFlagged(run));
}

export function countRuns(runs: readonly RunRecord[], includeFlagged: boolean): RunCounts {
  const c: RunCounts = {
    total: runs.length,
    succeeded: 0,
    failed: 0,
    interrupted: 0,
    pending: 0,
    running: 0,
    missing: 0,
    flagged: 0,
    flaggedExcluded: 0,
    flaggedByGate: {},
    used: 0,
  };
  const byGate = new Map<string, number>();
  for (const r of runs) {
    c[r.status]++;
    if (r.status === 'succeeded' && isFlagged(r)) {
      c.flagged++;
      if (!includeFlagged) c.flaggedExcluded++;
      for (const g of new Set(r.flags)) byGate.set(g, (byGate.get(g) ?? 0) + 1);
    }
    if (isUsed(r, includeFlagged)) c.used++;
  }
  c.missing = c.interrupted + c.pending + c.running;
  for (const g of [...byGate.keys()].sort()) c.flaggedByGate[g] = byGate.get(g) ?? 0;
  return c;
}

function byCycleThenId(a: RunRecord, b: RunRecord): number {
  return a.cycle - b.cycle || (a.experimentId < b.experimentId ? -1 : a.experimentId > b.experimentId ? 1 : 0) || (a.runId < b.runId ? -1 : a.runId > b.runId ? 1 : 0);
}

/** Summarises one metric over the used runs of a group. */
export function summariseMetric(
  runs: readonly RunRecord[],
  metric: string,
  opts: ResolvedAggregateOptions,
  seedKey: string,
  /** Why these values get no interval (see DescribeOptions.noInterval). */
  noInterval?: string,
): MetricSummary {
  const used = runs.filter((r) => isUsed(r, opts.includeFlagged)).sort(byCycleThenId);
  const points: MetricPoint[] = [];
  let nullCount = 0;
  for (const r of used) {
    const v = metricValue(r, metric);
    if (v === null) nullCount++;
    else points.push({ runId: r.runId, experimentId: r.experimentId, cycle: r.cycle, value: v, flagged: isFlagged(r) });
  }
  const description = describe(
    points.map((p) => p.value),
    { seed: `${String(opts.seed)}|${seedKey}|${metric}`, resamples: opts.resamples, method: opts.method, bootstrap: opts.bootstrap, ...(noInterval !== undefined ? { noInterval } : {}) },
  );
  return { metric, nullCount, description, points };
}

function experimentOrder(runs: readonly RunRecord[], experiments: readonly ExperimentRecord[]): string[] {
  const ids = experiments.map((e) => e.id);
  const known = new Set(ids);
  const extra = [...new Set(runs.map((r) => r.experimentId))].filter((id) => !known.has(id)).sort();
  return [...ids, ...extra];
}

function groupBy<K>(runs: readonly RunRecord[], key: (r: RunRecord) => K): Map<K, RunRecord[]> {
  const m = new Map<K, RunRecord[]>();
  for (const r of runs) {
    const k = key(r);
    const list = m.get(k);
    if (list) list.push(r);
    else m.set(k, [r]);
  }
  return m;
}

/**
 * An experiment's runs by GPU model: one group when they ran on at most one known model, or when
 * `groupBy` is 'none' (then the models pooled are named); else one group per model, in first-seen
 * order, plus runs of unknown model (never placed) as their own group.
 */
export function splitByGpuModel(runs: readonly RunRecord[], by: GroupBy): { gpuModel: string | null; pooled: string[]; runs: RunRecord[] }[] {
  const models = [...new Set(runs.flatMap((r) => (r.gpuModel ? [r.gpuModel] : [])))];
  if (models.length <= 1) return [{ gpuModel: models[0] ?? null, pooled: [], runs: [...runs] }];
  if (by === 'none') return [{ gpuModel: null, pooled: models, runs: [...runs] }];
  const groups = groupBy(runs, (r) => r.gpuModel ?? null);
  return [...groups.entries()].map(([gpuModel, rs]) => ({ gpuModel, pooled: [], runs: rs }));
}

/** Per-experiment statistics across cycles, in the order of `experiments` (then unknown ids, sorted); one per GPU model (see splitByGpuModel). */
export function aggregateByExperiment(
  runs: readonly RunRecord[],
  experiments: readonly ExperimentRecord[],
  options: AggregateOptions = {},
): ExperimentAggregate[] {
  const opts = resolveOptions(options);
  const names = options.metrics ? [...options.metrics] : collectMetricNames(runs);
  const allCycles = [...new Set(runs.map((r) => r.cycle))].sort((a, b) => a - b);
  const byExp = groupBy(runs, (r) => r.experimentId);
  const meta = new Map(experiments.map((e) => [e.id, e]));
  return experimentOrder(runs, experiments).flatMap((id) =>
    splitByGpuModel(byExp.get(id) ?? [], opts.groupBy).map(({ gpuModel, pooled, runs: group }, i) => {
      const e = meta.get(id);
      const succeededCycles = new Set(group.filter((r) => r.status === 'succeeded').map((r) => r.cycle));
      const usedCycles = new Set(group.filter((r) => isUsed(r, opts.includeFlagged)).map((r) => r.cycle));
      const metrics: Record<string, MetricSummary> = {};
      // The first group keeps the experiment's seed key, so a campaign on one GPU model is unchanged.
      for (const m of names) metrics[m] = summariseMetric(group, m, opts, i === 0 ? `exp:${id}` : `exp:${id}|gpu:${gpuModel ?? '?'}`);
      return {
        experimentId: id,
        gpuModel,
        pooledGpuModels: pooled,
        name: e ? e.name : null,
        backend: e ? e.backend : null,
        counts: countRuns(group, opts.includeFlagged),
        cycles: [...usedCycles].sort((a, b) => a - b),
        missingCycles: allCycles.filter((c) => !succeededCycles.has(c)),
        metrics,
      };
    }),
  );
}

/**
 * Why a per-cycle row has no interval: its values are one run of each of different experiments, so
 * their spread is the difference between experiments, not run-to-run noise, and an interval "of the
 * mean" would have no quantity to cover.
 */
export const CYCLE_NO_INTERVAL =
  'no interval: a cycle’s values are runs of different experiments, so their spread is between experiments, not run-to-run noise (use the per-experiment rows for intervals; per-cycle means show drift across cycles)';

/** Per-cycle statistics across experiments, by ascending cycle: counts, means and spreads, no intervals (CYCLE_NO_INTERVAL). */
export function aggregateByCycle(
  runs: readonly RunRecord[],
  experiments: readonly ExperimentRecord[],
  options: AggregateOptions = {},
): CycleAggregate[] {
  const opts = resolveOptions(options);
  const names = options.metrics ? [...options.metrics] : collectMetricNames(runs);
  const expIds = experimentOrder(runs, experiments);
  const byCycle = groupBy(runs, (r) => r.cycle);
  return [...byCycle.keys()]
    .sort((a, b) => a - b)
    .map((cycle) => {
      const group = byCycle.get(cycle) ?? [];
      const succeeded = new Set(group.filter((r) => r.status === 'succeeded').map((r) => r.experimentId));
      const used = new Set(group.filter((r) => isUsed(r, opts.includeFlagged)).map((r) => r.experimentId));
      const metrics: Record<string, MetricSummary> = {};
      for (const m of names) metrics[m] = summariseMetric(group, m, opts, `cycle:${cycle}`, CYCLE_NO_INTERVAL);
      return {
        cycle,
        counts: countRuns(group, opts.includeFlagged),
        experimentIds: expIds.filter((id) => used.has(id)),
        missingExperimentIds: expIds.filter((id) => !succeeded.has(id)),
        metrics,
      };
    });
}

/** Both views plus campaign totals. */
export function aggregate(
  runs: readonly RunRecord[],
  experiments: readonly ExperimentRecord[],
  options: AggregateOptions = {},
): Aggregation {
  const opts = resolveOptions(options);
  const metricNames = options.metrics ? [...options.metrics] : collectMetricNames(runs);
  const withNames = { ...options, metrics: metricNames };
  return {
    options: opts,
    metricNames,
    totals: countRuns(runs, opts.includeFlagged),
    experiments: aggregateByExperiment(runs, experiments, withNames),
    cycles: aggregateByCycle(runs, experiments, withNames),
  };
}
