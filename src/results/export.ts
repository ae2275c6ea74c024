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
 *   runs_flagged_excluded, runs_used, experiments_missing, then the same metric columns.
 *
 * Long CSV (`aggregationToLongCsv`), one row per (experiment, metric), metrics sorted by name:
 *   experiment_id, experiment_name, backend, gpu_model, gpu_models_pooled, metric, then the same 19 stat columns.
 *
 * Unified result format (`toUnifiedRun`): one object per run with the blocks `config`, `energy`
 * (Wh: gpu_wh, cpu_wh, ram_wh, total_wh, plus per-phase values), `performance` (throughput,
 * latency, efficiency) and `backend_info`; see `UnifiedRun`.
 */
import { parseResult } from '../contract/result-parse.js';
import { FEW_CYCLES_N } from './intervals.js';
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

function sortedRuns(runs: readonly RunRecord[]): RunRecord[] {
  const cmp = (x: string, y: string): number => (x < y ? -1 : x > y ? 1 : 0);
  return runs.slice().sort((a, b) => a.cycle - b.cycle || cmp(a.experimentId, b.experimentId) || cmp(a.runId, b.runId));
}

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

function statCells(s: MetricSummary | undefined): CsvCell[] {
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
    d ? d.ci_method : null,
    d ? d.n < FEW_CYCLES_N : null,
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
      ...metrics.flatMap((m) => statCells(c.metrics[m])),
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

// ---------------------------------------------------------------------------------------------
// Unified result format
// ---------------------------------------------------------------------------------------------

export interface UnifiedEnergyValues {
  gpu_wh: number | null;
  cpu_wh: number | null;
  ram_wh: number | null;
  total_wh: number | null;
}

export interface UnifiedRun {
  format: 'lem.unified/v1';
  run_id: string;
  experiment_id: string;
  cycle: number;
  status: RunRecord['status'];
  flags: string[];
  config: { experiment_name: string | null; backend: string | null; parameters: unknown };
  /**
   * Watt-hours.
   * - gpu/cpu/ram/total_wh: the measured window (metrics energy_<d>_j; the result file's readings when
   *   a domain's metric is absent), `raw` (energy_<d>_raw_j) and `adjusted` (energy_<d>_adjusted_j,
   *   idle baseline subtracted);
   * - phases: energy_<d>_<phase>_j, and lem's per-pass GPU phase energies energy_prefill_j /
   *   energy_decode_j (→ phases.prefill.gpu_wh / phases.decode.gpu_wh). lem's phase energies are per
   *   pass over the prompt set, while the window covers `repetitions` passes.
   */
  energy: UnifiedEnergyValues & {
    unit: 'Wh';
    raw: UnifiedEnergyValues;
    adjusted: UnifiedEnergyValues;
    phases: Record<string, UnifiedEnergyValues>;
  };
  performance: {
    /** Metrics ending in _per_s (e.g. output_tokens_per_s, tokens_per_s), as named in lem. */
    throughput: Record<string, number | null>;
    /** Metrics starting latency/ttft/itl, in seconds. */
    latency: Record<string, number | null>;
    /** Energy efficiency metrics: j_per_* and *_per_kwh. */
    efficiency: Record<string, number | null>;
  };
  backend_info: { backend: string | null; started_at: string | null; ended_at: string | null; environment: Record<string, unknown> };
  /** Why a metric that is null in this run was not measured (from the result file when loaded). */
  unmeasured: Record<string, string>;
  /** Every other metric, by lem name. */
  other_metrics: Record<string, number | null>;
}

const J_PER_WH = 3600;
const DOMAIN_KEYS: Record<string, keyof UnifiedEnergyValues> = {
  gpu: 'gpu_wh',
  cpu: 'cpu_wh',
  dram: 'ram_wh',
  ram: 'ram_wh',
  total: 'total_wh',
};
const DOMAIN_ENERGY_RE = /^energy_(gpu|cpu|dram|ram|total)(?:_([a-z0-9_]+?))?_j$/;
/** lem worker's per-pass phase energies (GPU): energy_prefill_j, energy_decode_j. */
const GPU_PHASE_ENERGY_RE = /^energy_(prefill|decode|preprocess)_j$/;

function emptyEnergy(): UnifiedEnergyValues {
  return { gpu_wh: null, cpu_wh: null, ram_wh: null, total_wh: null };
}

/** Maps one run to the unified result format. */
export function toUnifiedRun(run: RunRecord, experiment: ExperimentRecord | undefined): UnifiedRun {
  const parsed = run.result !== undefined ? parseResult(run.result) : null;
  const result = parsed && parsed.ok ? parsed.result : null;
  const energy = {
    unit: 'Wh' as const,
    ...emptyEnergy(),
    raw: emptyEnergy(),
    adjusted: emptyEnergy(),
    phases: {} as Record<string, UnifiedEnergyValues>,
  };
  const throughput: Record<string, number | null> = {};
  const latency: Record<string, number | null> = {};
  const efficiency: Record<string, number | null> = {};
  const other: Record<string, number | null> = {};
  for (const name of Object.keys(run.metrics).sort()) {
    const raw = run.metrics[name];
    const v = typeof raw === 'number' && Number.isFinite(raw) ? raw : null;
    const wh = v === null ? null : v / J_PER_WH;
    const dm = DOMAIN_ENERGY_RE.exec(name);
    const gp = GPU_PHASE_ENERGY_RE.exec(name);
    if (dm) {
      const key = DOMAIN_KEYS[dm[1] as string] as keyof UnifiedEnergyValues;
      const sub = dm[2];
      if (sub === undefined) energy[key] = wh;
      else if (sub === 'raw') energy.raw[key] = wh;
      else if (sub === 'adjusted') energy.adjusted[key] = wh;
      else (energy.phases[sub] ??= emptyEnergy())[key] = wh;
    } else if (gp) {
      const p = (energy.phases[gp[1] as string] ??= emptyEnergy());
      if (!(`energy_gpu_${gp[1] as string}_j` in run.metrics)) p.gpu_wh = wh;
    } else if (name.startsWith('j_per_') || name.endsWith('_per_kwh')) efficiency[name] = v;
    else if (name.startsWith('latency') || name.startsWith('ttft') || name.startsWith('itl')) latency[name] = v;
    else if (name.endsWith('_per_s')) throughput[name] = v;
    else other[name] = v;
  }
  // Fall back to the result file's energy readings for domains the metrics do not carry.
  if (result) {
    const fill = (key: keyof UnifiedEnergyValues, joules: number | null, metric: string): void => {
      if (!(metric in run.metrics) && energy[key] === null && joules !== null) energy[key] = joules / J_PER_WH;
    };
    fill('gpu_wh', result.energy.gpu.joules, 'energy_gpu_j');
    fill('cpu_wh', result.energy.cpu.joules, 'energy_cpu_j');
    fill('ram_wh', result.energy.dram.joules, 'energy_dram_j');
  }
  const unmeasured: Record<string, string> = {};
  if (result) {
    for (const name of Object.keys(run.metrics).sort()) {
      const reason = result.unmeasured[name];
      if (run.metrics[name] === null && reason !== undefined) unmeasured[name] = reason;
    }
  }
  return {
    format: 'lem.unified/v1',
    run_id: run.runId,
    experiment_id: run.experimentId,
    cycle: run.cycle,
    status: run.status,
    flags: [...run.flags],
    config: { experiment_name: experiment?.name ?? null, backend: experiment?.backend ?? result?.backend ?? null, parameters: experiment?.config ?? null },
    energy,
    performance: { throughput, latency, efficiency },
    backend_info: {
      backend: result?.backend ?? experiment?.backend ?? null,
      started_at: result?.started_at ?? null,
      ended_at: result?.ended_at ?? null,
      environment: result?.environment ?? {},
    },
    unmeasured,
    other_metrics: other,
  };
}

/** All runs in the unified format, by cycle/experiment/run id. */
export function toUnifiedResults(runs: readonly RunRecord[], experiments: readonly ExperimentRecord[]): UnifiedRun[] {
  const meta = new Map(experiments.map((e) => [e.id, e]));
  return sortedRuns(runs).map((r) => toUnifiedRun(r, meta.get(r.experimentId)));
}

/** Metric names used by succeeded runs (re-exported for CLI column pickers). */
export { collectMetricNames };
