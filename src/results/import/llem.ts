/**
 * LLenergyMeasure results → lem runs.
 *
 * v1 (`lem` 1.x, result schema "3.0.0"):
 *   results/aggregated/<exp_id>.json  one run (energies summed over processes, throughput averaged)
 *   results/raw/<exp_id>/process_<i>.json  per process; used only when the aggregated file is absent:
 *     the processes of one directory become one run, aggregated as v1 did (energies and tokens summed,
 *     throughput averaged, window = earliest start … latest end).
 * v2 (`llem`, result schema "2.0"): one `result.json` per experiment → one run.
 *
 * Mapping (both versions; joules stay joules, milliseconds become seconds):
 *   total_energy_j → energy_total_j          energy_adjusted_j → energy_total_adjusted_j
 *   energy_per_device_j[i] → energy_gpu<i>_j  (and energy_gpu_j = their sum)
 *   baseline_power_w → baseline_power_w       total_tokens → output_tokens
 *   total_inference_time_sec → duration_s     avg_tokens_per_second → output_tokens_per_s
 *   avg_energy_per_token_j → j_per_output_token_total
 *   latency_stats.<ttft|itl|e2e>_<mean|median|p50|p90|p95|p99|std>_ms → <ttft|itl|latency>_<stat>_s
 *   warmup_result.iterations_completed → warmup_iterations
 *   v1 process energy_metrics {gpu_energy_j, cpu_energy_j, ram_energy_j, total_energy_j} →
 *     energy_{gpu,cpu,dram,total}_j; energy_breakdown.adjusted_j → energy_total_adjusted_j.
 * The experiment is keyed by `effective_config` (v2) / `config` or `effective_config` (v1).
 */
import { isRecord, sortedMetrics, type ImportedExperiment, type ImportedRun } from './types.js';

export interface LlemRead {
  experiment: ImportedExperiment;
  run: ImportedRun;
  version: string | null;
  warnings: string[];
}

const n = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const s = (v: unknown): string | null => (typeof v === 'string' && v.length > 0 ? v : null);

function latency(stats: unknown, metrics: Record<string, number | null>): void {
  if (!isRecord(stats)) return;
  for (const [k, v] of Object.entries(stats)) {
    const m = /^(ttft|itl|e2e|latency)_(mean|median|p50|p90|p95|p99|std|stdev)_(ms|s)$/.exec(k);
    const x = n(v);
    if (!m || x === null) continue;
    const what = m[1] === 'e2e' ? 'latency' : (m[1] as string);
    const stat = m[2] === 'median' ? 'p50' : m[2] === 'stdev' ? 'std' : (m[2] as string);
    metrics[`${what}_${stat}_s`] = m[3] === 'ms' ? x / 1000 : x;
  }
}

function common(json: Record<string, unknown>, metrics: Record<string, number | null>): void {
  const map: Array<[string, string]> = [
    ['total_energy_j', 'energy_total_j'],
    ['energy_adjusted_j', 'energy_total_adjusted_j'],
    ['baseline_power_w', 'baseline_power_w'],
    ['total_tokens', 'output_tokens'],
    ['total_inference_time_sec', 'duration_s'],
    ['avg_tokens_per_second', 'output_tokens_per_s'],
    ['avg_energy_per_token_j', 'j_per_output_token_total'],
  ];
  for (const [from, to] of map) if (from in json) metrics[to] = n(json[from]);
  if (Array.isArray(json.energy_per_device_j)) {
    const per = json.energy_per_device_j.map(n);
    per.forEach((v, i) => (metrics[`energy_gpu${i}_j`] = v));
    if (per.length > 0 && per.every((v) => v !== null)) metrics.energy_gpu_j = (per as number[]).reduce((a, b) => a + b, 0);
  }
  latency(json.latency_stats, metrics);
  if (isRecord(json.warmup_result) && 'iterations_completed' in json.warmup_result) metrics.warmup_iterations = n(json.warmup_result.iterations_completed);
}

function experimentOf(config: unknown, json: Record<string, unknown>, tool: string): ImportedExperiment {
  const cfg = isRecord(config) ? config : {};
  const model = s(json.model_name) ?? (isRecord(cfg.model) ? s(cfg.model.name) ?? s(cfg.model.id) : s(cfg.model)) ?? s(cfg.model_name) ?? 'unknown-model';
  const backend = s(json.backend) ?? s(json.engine) ?? s(cfg.backend) ?? s(cfg.engine) ?? 'pytorch';
  const name = s(cfg.config_name) ?? s(cfg.name) ?? `${backend} ${model}`;
  return { name, backend, config: { source: tool, config: isRecord(config) ? config : { experiment_id: json.experiment_id ?? null, model, backend } } };
}

/** A v2 `result.json` (schema_version "2.0"). */
export function readLlemV2(json: Record<string, unknown>): LlemRead {
  const metrics: Record<string, number | null> = {};
  common(json, metrics);
  return {
    experiment: experimentOf(json.effective_config, json, 'llenergymeasure-v2'),
    run: { experiment: 0, status: 'succeeded', metrics: sortedMetrics(metrics), flags: [], unmeasured: {}, startedAt: s(json.start_time), endedAt: s(json.end_time), origin: 'result.json' },
    version: s(json.llenergymeasure_version) ?? s(json.schema_version),
    warnings: [],
  };
}

/** A v1 aggregated result (results/aggregated/<exp_id>.json). */
export function readLlemV1Aggregated(json: Record<string, unknown>): LlemRead {
  const metrics: Record<string, number | null> = {};
  common(json, metrics);
  const agg = json.aggregation;
  if (isRecord(agg) && 'num_processes' in agg) metrics.processes = n(agg.num_processes);
  return {
    experiment: experimentOf(json.effective_config ?? json.config, json, 'llenergymeasure-v1'),
    run: { experiment: 0, status: 'succeeded', metrics: sortedMetrics(metrics), flags: [], unmeasured: {}, startedAt: s(json.start_time), endedAt: s(json.end_time), origin: `aggregated ${String(json.experiment_id ?? '')}`.trim() },
    version: s(json.schema_version),
    warnings: [],
  };
}

/** The v1 process files of one raw/<exp_id>/ directory, aggregated as v1 did. */
export function readLlemV1Processes(processes: readonly Record<string, unknown>[], id: string): LlemRead {
  const metrics: Record<string, number | null> = {};
  const sum = (pick: (p: Record<string, unknown>) => unknown): number | null => {
    const vs = processes.map((p) => n(pick(p)));
    return vs.every((v) => v !== null) ? (vs as number[]).reduce((a, b) => a + b, 0) : null;
  };
  const sub = (p: Record<string, unknown>, block: string, key: string): unknown => (isRecord(p[block]) ? (p[block] as Record<string, unknown>)[key] : undefined);
  metrics.energy_gpu_j = sum((p) => sub(p, 'energy_metrics', 'gpu_energy_j'));
  metrics.energy_cpu_j = sum((p) => sub(p, 'energy_metrics', 'cpu_energy_j'));
  metrics.energy_dram_j = sum((p) => sub(p, 'energy_metrics', 'ram_energy_j'));
  metrics.energy_total_j = sum((p) => sub(p, 'energy_metrics', 'total_energy_j'));
  metrics.energy_total_adjusted_j = sum((p) => sub(p, 'energy_breakdown', 'adjusted_j'));
  metrics.output_tokens = sum((p) => sub(p, 'inference_metrics', 'output_tokens') ?? sub(p, 'inference_metrics', 'total_tokens'));
  metrics.input_tokens = sum((p) => sub(p, 'inference_metrics', 'input_tokens'));
  const tps = processes.map((p) => n(sub(p, 'inference_metrics', 'tokens_per_second')));
  metrics.output_tokens_per_s = tps.every((v) => v !== null) && tps.length > 0 ? (tps as number[]).reduce((a, b) => a + b, 0) / tps.length : null;
  const durs = processes.map((p) => n(sub(p, 'inference_metrics', 'inference_time_sec')));
  metrics.duration_s = durs.every((v) => v !== null) && durs.length > 0 ? Math.max(...(durs as number[])) : null;
  if (typeof metrics.energy_total_j === 'number' && typeof metrics.output_tokens === 'number' && metrics.output_tokens > 0) {
    metrics.j_per_output_token_total = metrics.energy_total_j / metrics.output_tokens;
  }
  metrics.processes = processes.length;
  const unmeasured: Record<string, string> = {};
  for (const [k, v] of Object.entries(metrics)) if (v === null) unmeasured[k] = 'missing in at least one process file';
  const starts = processes.map((p) => s(sub(p, 'timestamps', 'start'))).filter((x): x is string => x !== null).sort();
  const ends = processes.map((p) => s(sub(p, 'timestamps', 'end'))).filter((x): x is string => x !== null).sort();
  const first = processes[0] ?? {};
  return {
    experiment: experimentOf(first.effective_config ?? first.config, first, 'llenergymeasure-v1'),
    run: { experiment: 0, status: 'succeeded', metrics: sortedMetrics(metrics), flags: [], unmeasured, startedAt: starts[0] ?? null, endedAt: ends[ends.length - 1] ?? null, origin: `raw ${id} (${processes.length} process file(s))` },
    version: s(first.schema_version),
    warnings: [],
  };
}
