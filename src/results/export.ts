/**
 * Exports of runs and aggregates: CSV, JSON and the unified result format.
 *
 * CSV (RFC 4180 quoting: a field containing a comma, a double quote, CR or LF, or with leading or
 * trailing spaces, is wrapped in double quotes with inner quotes doubled; rows end with "\n"; empty
 * cell = null / not measured; numbers are written in JavaScript's shortest round-trip form, which
 * may use exponent notation such as 1e-7).
 *
 * Column order of the per-run CSV (`runsToCsv`), one row per run, rows by cycle, experiment, run id:
 *   run_id, experiment_id, experiment_name, backend, cycle, status, flags, result_path,
 *   then one column per metric, sorted by name (byte order), e.g. energy_gpu_j, energy_total_j,
 *   j_per_output_token, latency_p50_s, tokens_per_s.
 *   `flags` joins the validation gate names with ";" (empty when clean).
 *
 * Column order of the per-experiment CSV (`aggregationToCsv`, wide), one row per experiment (per
 * experiment and GPU model when its runs ran on more than one; see aggregate.ts splitByGpuModel):
 *   experiment_id, experiment_name, backend, gpu_model, gpu_models_pooled, runs_total, runs_succeeded, runs_failed, runs_missing,
 *   runs_flagged, runs_flagged_excluded, runs_used, cycles_missing,
 *   then for each metric sorted by name, these 19 columns named <metric>__<stat>:
 *   n, nulls, mean, median, std, cv, min, max, ci95_low, ci95_high, ci_method, few_cycles,
 *   ci95_t_low, ci95_t_high, ci95_boot_low, ci95_boot_high, ci95_boot_method, outliers_mild,
 *   outliers_extreme.
 *   `gpu_model` is empty when unknown or pooled; `gpu_models_pooled` joins the models pooled with ";"
 *   (only with placement.group_by: none). `cycles_missing` joins cycle numbers with ";". `ci95_low/high` is the headline interval of the
 *   interval policy (intervals.ts), `ci_method` names it (`t`); `few_cycles` is true when n < 5 (the
 *   interval is wide and assumes roughly normal noise). `ci95_boot_*` is the secondary bootstrap
 *   interval, by `ci95_boot_method` (bca or percentile), empty when it was not computed (n < 30 unless
 *   asked for). `outliers_*` are counts of Tukey outliers (1.5×/3×IQR), never dropped.
 *
 * Column order of the per-cycle CSV (`aggregationToCsv(agg, 'cycle')`):
 *   cycle, runs_total, runs_succeeded, runs_failed, runs_missing, runs_flagged,
 *   runs_flagged_excluded, runs_used, experiments_missing, then the same metric columns, with the
 *   interval columns (ci95_*, ci_method, few_cycles) empty: a cycle's values are runs of different
 *   experiments, not repetitions (aggregate.ts CYCLE_NO_INTERVAL).
 *
 * Long CSV (`aggregationToLongCsv`), one row per (experiment, metric), metrics sorted by name:
 *   experiment_id, experiment_name, backend, gpu_model, gpu_models_pooled, metric, then the same 19 stat columns.
 *
 * Unified result format (`toUnifiedRun`, in unified.ts, re-exported here): one object per run.
 */
import { FEW_CYCLES_N } from './intervals.js';
import { sortedRuns } from './unified.js';
import { collectMetricNames, type Aggregation, type ExperimentAggregate, type ExperimentRecord, type MetricSummary, type RunCounts, type RunRecord } from './aggregate.js';

export type CsvCell = string | number | boolean | null | undefined;

/** One CSV field, quoted when needed. */
export function csvField(value: CsvCell): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : '';
  const s = String(value);
  if (/[",\r\n]/.test(s) || /^\s|\s$/.test(s)) return `"${s.replace(/"/g, '""')}"`;
  return s;
}

/** A CSV document: header row, then rows; every line ends with "\n". */
export function toCsv(header: readonly string[], rows: readonly (readonly CsvCell[])[]): string {
  const lines = [header.map(csvField).join(',')];
  for (const r of rows) lines.push(r.map(csvField).join(','));
  return lines.join('\n') + '\n';
}

export const RUN_CSV_LEADING_COLUMNS = [
  'run_id',
  'experiment_id',
  'experiment_name',
  'backend',
  'cycle',
  'status',
  'flags',
  'result_path',
] as const;

export const AGGREGATE_STAT_COLUMNS = [
  'n',
  'nulls',
  'mean',
  'median',
  'std',
  'cv',
  'min',
  'max',
  'ci95_low',
  'ci95_high',
  'ci_method',
  'few_cycles',
  'ci95_t_low',
  'ci95_t_high',
  'ci95_boot_low',
  'ci95_boot_high',
  'ci95_boot_method',
  'outliers_mild',
  'outliers_extreme',
] as const;

export const AGGREGATE_CSV_LEADING_COLUMNS = [
  'experiment_id',
  'experiment_name',
  'backend',
  'gpu_model',
  'gpu_models_pooled',
  'runs_total',
  'runs_succeeded',
  'runs_failed',
  'runs_missing',
  'runs_flagged',
  'runs_flagged_excluded',
  'runs_used',
  'cycles_missing',
] as const;

export const CYCLE_CSV_LEADING_COLUMNS = [
  'cycle',
  'runs_total',
  'runs_succeeded',
  'runs_failed',
  'runs_missing',
  'runs_flagged',
  'runs_flagged_excluded',
  'runs_used',
  'experiments_missing',
] as const;

export const LONG_CSV_LEADING_COLUMNS = ['experiment_id', 'experiment_name', 'backend', 'gpu_model', 'gpu_models_pooled', 'metric'] as const;

/** Metric names of all runs (any status), sorted by name. */
function allMetricNames(runs: readonly RunRecord[]): string[] {
  const s = new Set<string>();
  for (const r of runs) for (const k of Object.keys(r.metrics)) s.add(k);
  return [...s].sort();
}

export interface RunsCsvOptions {
  /** Metric columns to write (default: every metric of every run, sorted by name). */
  metrics?: readonly string[];
}

/** One row per run; see the column order at the top of this file. */
export function runsToCsv(runs: readonly RunRecord[], experiments: readonly ExperimentRecord[], opts: RunsCsvOptions = {}): string {
  const metrics = opts.metrics ? [...opts.metrics].sort() : allMetricNames(runs);
  const meta = new Map(experiments.map((e) => [e.id, e]));
  const rows = sortedRuns(runs).map((r) => {
    const e = meta.get(r.experimentId);
    const v = (m: string): number | null => {
      const x = r.metrics[m];
      return typeof x === 'number' && Number.isFinite(x) ? x : null;
    };
    return [r.runId, r.experimentId, e?.name ?? null, e?.backend ?? null, r.cycle, r.status, r.flags.join(';'), r.resultPath, ...metrics.map(v)];
  });
  return toCsv([...RUN_CSV_LEADING_COLUMNS, ...metrics], rows);
}

function statCells(s: MetricSummary | undefined, intervals = true): CsvCell[] {
  const d = s?.description ?? null;
  return [
    d?.n ?? 0,
    s?.nullCount ?? null,
    d?.mean,
    d?.median,
    d?.std,
    d?.cv,
    d?.min,
    d?.max,
    d?.ci95?.low,
    d?.ci95?.high,
    d && intervals ? d.ci_method : null,
    d && intervals ? d.n < FEW_CYCLES_N : null,
    d?.ci95_t?.low,
    d?.ci95_t?.high,
    d?.ci95_bootstrap?.low,
    d?.ci95_bootstrap?.high,
    d?.ci95_bootstrap ? d.ci95_bootstrap_method : null,
    d ? d.outliers.mild.length : null,
    d ? d.outliers.extreme.length : null,
  ];
}

/** The runs_* columns of an aggregate row, in the documented order. */
function countCells(c: RunCounts): CsvCell[] {
  return [c.total, c.succeeded, c.failed, c.missing, c.flagged, c.flaggedExcluded, c.used];
}

/** Aggregates as CSV: one row per experiment (default) or per cycle; see the column order at the top. */
export function aggregationToCsv(agg: Aggregation, by: 'experiment' | 'cycle' = 'experiment'): string {
  const metrics = [...agg.metricNames].sort();
  const metricHeader = metrics.flatMap((m) => AGGREGATE_STAT_COLUMNS.map((s) => `${m}__${s}`));
  if (by === 'cycle') {
    const rows = agg.cycles.map((c) => [
      c.cycle,
      ...countCells(c.counts),
      c.missingExperimentIds.join(';'),
      ...metrics.flatMap((m) => statCells(c.metrics[m], false)),
    ]);
    return toCsv([...CYCLE_CSV_LEADING_COLUMNS, ...metricHeader], rows);
  }
  const rows = agg.experiments.map((e) => [
    e.experimentId,
    e.name,
    e.backend,
    e.gpuModel,
    e.pooledGpuModels.join(';'),
    ...countCells(e.counts),
    e.missingCycles.join(';'),
    ...metrics.flatMap((m) => statCells(e.metrics[m])),
  ]);
  return toCsv([...AGGREGATE_CSV_LEADING_COLUMNS, ...metricHeader], rows);
}

/** Aggregates as long CSV: one row per (experiment, metric). */
export function aggregationToLongCsv(agg: Aggregation): string {
  const metrics = [...agg.metricNames].sort();
  const rows = agg.experiments.flatMap((e) => metrics.map((m) => [e.experimentId, e.name, e.backend, e.gpuModel, e.pooledGpuModels.join(';'), m, ...statCells(e.metrics[m])]));
  return toCsv([...LONG_CSV_LEADING_COLUMNS, ...AGGREGATE_STAT_COLUMNS], rows);
}

// ---------------------------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------------------------

function sortedRecord<T>(r: Record<string, T>): Record<string, T> {
  const out: Record<string, T> = {};
  for (const k of Object.keys(r).sort()) out[k] = r[k] as T;
  return out;
}

export interface RunsJson {
  format: 'lem.runs/v1';
  experiments: ExperimentRecord[];
  runs: {
    run_id: string;
    experiment_id: string;
    cycle: number;
    status: RunRecord['status'];
    flags: string[];
    result_path: string | null;
    /** The GPU model the run ran on (placement, else the result's GPU names); null when unknown. */
    gpu_model: string | null;
    metrics: Record<string, number | null>;
  }[];
}

/** Runs as a JSON-ready object (metric keys sorted, runs by cycle/experiment/run id). */
export function runsToJson(runs: readonly RunRecord[], experiments: readonly ExperimentRecord[]): RunsJson {
  return {
    format: 'lem.runs/v1',
    experiments: experiments.map((e) => ({ id: e.id, name: e.name, backend: e.backend, config: e.config })),
    runs: sortedRuns(runs).map((r) => ({
      run_id: r.runId,
      experiment_id: r.experimentId,
      cycle: r.cycle,
      status: r.status,
      flags: [...r.flags],
      result_path: r.resultPath,
      gpu_model: r.gpuModel ?? null,
      metrics: sortedRecord(r.metrics),
    })),
  };
}

export type ExperimentAggregateJson = Omit<ExperimentAggregate, 'gpuModel' | 'pooledGpuModels'> & { gpu_model: string | null; gpu_models_pooled: string[] };

export interface AggregationJson extends Omit<Aggregation, 'experiments'> {
  format: 'lem.aggregate/v1';
  /** placement.group_by the aggregates were formed with. */
  group_by: Aggregation['options']['groupBy'];
  experiments: ExperimentAggregateJson[];
}

/** The aggregation as a JSON-ready object (plain data already; adds the format tag and the GPU model keys). */
export function aggregationToJson(agg: Aggregation): AggregationJson {
  return {
    format: 'lem.aggregate/v1',
    ...agg,
    group_by: agg.options.groupBy,
    experiments: agg.experiments.map(({ gpuModel, pooledGpuModels, ...e }) => ({ ...e, gpu_model: gpuModel, gpu_models_pooled: pooledGpuModels })),
  };
}

/** Pretty JSON text with a trailing newline. */
export function toJsonText(value: unknown): string {
  return JSON.stringify(value, null, 2) + '\n';
}

export { toUnifiedResults, toUnifiedRun, type UnifiedEnergyValues, type UnifiedRun } from './unified.js';

/** Metric names used by succeeded runs (re-exported for CLI column pickers). */
export { collectMetricNames };
