/**
 * optimum-benchmark `benchmark_report.json` / `benchmark.json` ({config, report}) → lem runs.
 *
 * What becomes a run: optimum-benchmark repeats its scenario (e.g. 10 iterations) and keeps, per
 * phase, the list of per-iteration latencies (`latency.values`). When the phases that have such a
 * list (all but `per_token`, whose values are per generated token) agree on its length n ≥ 2, the
 * report becomes n runs (cycles 1…n), so intervals exist:
 *   Phases with a single value (load_model) and peak memory are measured once: repetition 1 only.
 *   - latency: run i gets the phase's i-th value as its mean (ttft_mean_s for prefill,
 *     latency_decode_mean_s for decode, …); percentiles of one value are not invented.
 *   - throughput: optimum-benchmark divides a fixed volume by the mean latency, so run i gets
 *     value × mean / values[i] (the same volume over its own latency).
 *   - energy and efficiency: per repetition when the phase carries a `measures` list of n energy
 *     blocks (AI Energy Score's energy_star fork); otherwise optimum-benchmark measured the phase's
 *     energy once over all iterations (its value is the per-iteration mean), so it stays on run 1 only
 *     and is null with that reason on the others — one measurement is never copied into n samples.
 * Otherwise (no lists, or lists of different lengths) the report is one run.
 * The per-phase mapping to lem metric names is the one of ../compat/import-optimum-benchmark.ts.
 */
import { importOptimumBenchmarkReport } from '../compat/import-optimum-benchmark.js';
import { isRecord, sortedMetrics, type ImportedExperiment, type ImportedRun } from './types.js';

const PHASE_KEYS = ['memory', 'latency', 'throughput', 'energy', 'efficiency'];

export interface ObRead {
  experiment: ImportedExperiment;
  runs: ImportedRun[];
  version: string | null;
  warnings: string[];
}

function phasesOf(report: Record<string, unknown>): Array<[string, Record<string, unknown>]> {
  return Object.entries(report).filter((e): e is [string, Record<string, unknown>] => isRecord(e[1]) && PHASE_KEYS.some((k) => k in (e[1] as object)));
}

function latencyValues(phase: Record<string, unknown>): number[] | null {
  const lat = phase.latency;
  if (!isRecord(lat) || !Array.isArray(lat.values)) return null;
  const vs = lat.values.filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
  return vs.length === lat.values.length && vs.length > 0 ? vs : null;
}

/** The number of repetitions the report holds (1 when it cannot tell), and why. */
export function obRepetitions(report: Record<string, unknown>): { n: number; note: string | null } {
  const lengths = new Map<string, number>();
  for (const [name, phase] of phasesOf(report)) {
    if (name === 'per_token') continue;
    const vs = latencyValues(phase);
    // A single value is a phase measured once (load_model), not a repetition list.
    if (vs && vs.length >= 2) lengths.set(name, vs.length);
  }
  const distinct = [...new Set(lengths.values())];
  if (distinct.length === 0) return { n: 1, note: null };
  if (distinct.length > 1) {
    return { n: 1, note: `phases list different numbers of latency values (${[...lengths].map(([k, v]) => `${k}: ${v}`).join(', ')}); imported as one run` };
  }
  return { n: distinct[0] as number, note: null };
}

function repetitionReport(report: Record<string, unknown>, i: number, n: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(report)) {
    if (!isRecord(value) || !PHASE_KEYS.some((k) => k in value)) {
      out[name] = value;
      continue;
    }
    const phase: Record<string, unknown> = { ...value };
    const vs = name === 'per_token' ? null : latencyValues(value);
    const lat = value.latency;
    if (vs && vs.length === n && isRecord(lat)) {
      const v = vs[i] as number;
      phase.latency = { unit: lat.unit, values: [v], count: 1, total: v, mean: v };
      const mean = typeof lat.mean === 'number' ? lat.mean : vs.reduce((s, x) => s + x, 0) / vs.length;
      const tp = value.throughput;
      if (isRecord(tp) && typeof tp.value === 'number' && v > 0) phase.throughput = { unit: tp.unit, value: (tp.value * mean) / v };
    } else if (i > 0) {
      // A phase measured once (e.g. load_model) or per token: its values stay on repetition 1.
      phase.latency = null;
      phase.throughput = null;
    }
    // Peak memory is one maximum over all repetitions.
    if (i > 0) phase.memory = null;
    const measures = Array.isArray(value.measures) && value.measures.length === n ? (value.measures as unknown[]) : null;
    if (measures && isRecord(measures[i])) {
      const e = measures[i] as Record<string, unknown>;
      phase.energy = e;
      const eff = value.efficiency;
      const eTot = value.energy;
      // Efficiency is volume per kWh: the same volume over this repetition's energy.
      if (isRecord(eff) && typeof eff.value === 'number' && isRecord(eTot) && typeof eTot.total === 'number' && typeof e.total === 'number' && e.total > 0 && eTot.unit === e.unit) {
        phase.efficiency = { unit: eff.unit, value: (eff.value * eTot.total) / e.total };
      } else phase.efficiency = null;
    } else if (i > 0) {
      phase.energy = null;
      phase.efficiency = null;
    }
    out[name] = phase;
  }
  return out;
}

function obVersion(top: Record<string, unknown>): string | null {
  const cfg = top.config;
  if (isRecord(cfg)) {
    const env = cfg.environment;
    if (isRecord(env) && typeof env.optimum_benchmark_version === 'string') return env.optimum_benchmark_version;
  }
  return null;
}

function backendOf(config: unknown): string {
  if (isRecord(config) && isRecord(config.backend) && typeof config.backend.name === 'string') return config.backend.name;
  return 'optimum-benchmark';
}

function nameOf(config: unknown, fallback: string): string {
  if (isRecord(config) && typeof config.name === 'string') return config.name;
  if (isRecord(config) && isRecord(config.backend) && typeof config.backend.model === 'string') return `${backendOf(config)} ${config.backend.model}`;
  return fallback;
}

/** Reads a parsed optimum-benchmark report (bare or wrapped in {config, report}). */
export function readObReport(json: Record<string, unknown>, fallbackName: string): ObRead {
  const wrapped = isRecord(json.report);
  const report = (wrapped ? json.report : json) as Record<string, unknown>;
  const config = wrapped ? (json.config ?? null) : null;
  const warnings: string[] = [];
  const { n, note } = obRepetitions(report);
  if (note) warnings.push(note);
  const runs: ImportedRun[] = [];
  let first: Record<string, number | null> = {};
  for (let i = 0; i < n; i++) {
    const rep = n === 1 ? report : repetitionReport(report, i, n);
    const imported = importOptimumBenchmarkReport(rep, { runId: 'import', experimentId: 'import' });
    const r = imported.runs[0];
    if (!r) continue;
    if (i === 0) for (const w of imported.warnings) warnings.push(w);
    const unmeasured: Record<string, string> = {};
    const metrics = { ...r.metrics };
    if (i === 0) first = metrics;
    else {
      for (const [k, v] of Object.entries(first)) {
        if (v !== null && (metrics[k] === undefined || metrics[k] === null)) {
          metrics[k] = null;
          unmeasured[k] = `optimum-benchmark measured this once over all ${n} repetitions; the value is on repetition 1 only`;
        }
      }
    }
    runs.push({
      experiment: 0,
      status: 'succeeded',
      metrics: sortedMetrics(metrics),
      flags: r.flags.filter((f) => f !== 'negative_energy'),
      unmeasured,
      startedAt: null,
      endedAt: null,
      origin: n === 1 ? 'the report' : `repetition ${i + 1} of ${n}`,
    });
  }
  return {
    experiment: { name: nameOf(config, fallbackName), backend: backendOf(config), config: { source: 'optimum-benchmark', config } },
    runs,
    version: obVersion(json),
    warnings,
  };
}
