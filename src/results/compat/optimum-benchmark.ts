/**
 * optimum-benchmark `benchmark_report.json` view of a lem run, written so that optimum-benchmark's own
 * reader (BenchmarkReport.from_dict → TargetMeasurements(**phase) → Energy/Latency/...(**block)) and
 * its report formatter (to_plain_text / to_markdown_text, which format every Energy, Latency,
 * Throughput and Efficiency field with "{x:f}"-style specs) accept it, and so that AI Energy Score's
 * summariser counts each joule once (checked in test/results/compat-readback.test.ts against
 * re-implementations in test/fixtures/compat/).
 *
 * Phases, in optimum-benchmark's order: load_dataset, preprocess_dataset, preprocess, load_model,
 * load, forward, call, prefill, decode, per_token. Only phases the run has data for are written;
 * there is NO whole-window phase (optimum-benchmark writes none, and the summariser sums every
 * top-level phase's energy.gpu, so one would double-count). A block (memory, latency, ...) is null
 * when not measured, as optimum-benchmark writes it; a block that is written has no null fields:
 *   energy      {unit: "kWh", cpu, ram, gpu, total}. A domain lem did not measure is written 0.0 (as
 *               CodeCarbon, optimum-benchmark's energy tracker, writes a device it does not see) and
 *               named in the sidecar `lem_export.json`; total = energy_total_<P>_j when present, else
 *               the sum of the measured domains (lem's phase energies are GPU only).
 *   efficiency  {unit, value}: imported `<P>_<x>_per_kwh` kept as is; otherwise from volume /
 *               energy.total (0 when total ≤ 0, as Efficiency.from_energy): prefill in samples/kWh
 *               (requests per pass), decode in tokens/kWh (tokens generated after the first, per pass:
 *               (output_tokens − requests) / repetitions, optimum-benchmark's decode volume).
 *   throughput  {unit, value}: imported `<P>_<x>_per_s` kept; otherwise prefill in samples/s
 *               (requests per pass / prefill_time_s, optimum-benchmark's PREFILL_THROUGHPUT_UNIT) and
 *               decode in tokens/s (decode volume / (window_s / repetitions − prefill_time_s)).
 *   latency     {unit: "s", values, count, total, mean, p50, p90, p95, p99, stdev, stdev_}, written only
 *               complete: from raw values (Latency.from_values), or the block of an imported
 *               optimum-benchmark report (run.result), else null (lem's summary percentiles alone lack
 *               count, total, p90 and p95).
 *   memory      {unit: "MB", max_ram, max_global_vram, ...} from memory_<P>_<key>_mb (its optional
 *               fields may be null, as optimum-benchmark's Memory allows).
 * Energy of prefill/decode: energy_<d>_<P>_j (imports), and lem's own per-pass GPU energies
 * energy_prefill_j / energy_decode_j for the gpu domain.
 */
import type { RunRecord } from '../aggregate.js';

export interface ObEnergy {
  unit: 'kWh';
  cpu: number;
  ram: number;
  gpu: number;
  total: number;
}
export interface ObEfficiency {
  unit: string;
  value: number;
}
export interface ObLatency {
  unit: 's';
  values: number[];
  count: number;
  total: number;
  mean: number;
  p50: number;
  p90: number;
  p95: number;
  p99: number;
  stdev: number;
  stdev_: number;
}
export interface ObThroughput {
  unit: string;
  value: number;
}
export interface ObMemory {
  unit: 'MB';
  max_ram: number | null;
  max_global_vram: number | null;
  max_process_vram: number | null;
  max_reserved: number | null;
  max_allocated: number | null;
}
export interface ObPhase {
  memory: ObMemory | null;
  latency: ObLatency | null;
  throughput: ObThroughput | null;
  energy: ObEnergy | null;
  efficiency: ObEfficiency | null;
}
export type ObReport = Record<string, ObPhase>;

export const OB_MEMORY_KEYS = ['max_ram', 'max_global_vram', 'max_process_vram', 'max_reserved', 'max_allocated'] as const;
export const OB_LATENCY_STATS = ['mean', 'p50', 'p90', 'p95', 'p99'] as const;

export const J_PER_KWH = 3_600_000;

export interface ObViewOptions {
  /** Raw latency samples in seconds per phase (e.g. per-request TTFTs for `prefill`), when available. */
  latencyValues?: Partial<Record<string, readonly number[]>>;
}

/** optimum-benchmark's phase names, in the order its scenarios write them. */
export const OB_PHASES = ['load_dataset', 'preprocess_dataset', 'preprocess', 'load_model', 'load', 'forward', 'call', 'prefill', 'decode', 'per_token'] as const;

/** optimum-benchmark's Latency.from_values: NumPy linear percentiles, population stdev, stdev_ in %. */
export function latencyFromValues(values: readonly number[]): ObLatency {
  const xs = values.filter((v) => Number.isFinite(v));
  const n = xs.length;
  if (n === 0) {
    // numpy's mean/percentile of [] are nan; a phase without samples gets no latency block instead.
    return { unit: 's', values: [], count: 0, total: 0, mean: 0, p50: 0, p90: 0, p95: 0, p99: 0, stdev: 0, stdev_: 0 };
  }
  const sorted = xs.slice().sort((a, b) => a - b);
  const q = (p: number): number => {
    const h = (n - 1) * p;
    const lo = Math.floor(h);
    const hi = Math.min(lo + 1, n - 1);
    return (sorted[lo] as number) + (h - lo) * ((sorted[hi] as number) - (sorted[lo] as number));
  };
  const total = xs.reduce((s, v) => s + v, 0);
  const mean = total / n;
  const stdev = n > 1 ? Math.sqrt(xs.reduce((s, v) => s + (v - mean) ** 2, 0) / n) : 0;
  const stdevPct = n > 1 ? (stdev / Math.abs(mean)) * 100 : 0;
  return { unit: 's', values: [...xs], count: n, total, mean, p50: q(0.5), p90: q(0.9), p95: q(0.95), p99: q(0.99), stdev, stdev_: stdevPct };
}

function num(metrics: Record<string, number | null>, name: string): number | null {
  const v = metrics[name];
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

const DOMAINS = [
  ['gpu', 'gpu'],
  ['cpu', 'cpu'],
  ['ram', 'dram'],
] as const;

function energyFor(m: Record<string, number | null>, phase: string): { energy: ObEnergy; unmeasured: string[] } | null {
  const j: Record<'gpu' | 'cpu' | 'ram', number | null> = { gpu: null, cpu: null, ram: null };
  for (const [ob, lem] of DOMAINS) j[ob] = num(m, `energy_${lem}_${phase}_j`) ?? (ob === 'ram' ? num(m, `energy_ram_${phase}_j`) : null);
  if (j.gpu === null && (phase === 'prefill' || phase === 'decode' || phase === 'preprocess')) j.gpu = num(m, `energy_${phase}_j`);
  const totalJ = num(m, `energy_total_${phase}_j`);
  if (j.gpu === null && j.cpu === null && j.ram === null && totalJ === null) return null;
  const unmeasured = DOMAINS.map(([ob]) => ob).filter((d) => j[d] === null);
  const kwh = (v: number | null): number => (v === null ? 0 : v / J_PER_KWH);
  const measuredSum = (j.gpu ?? 0) + (j.cpu ?? 0) + (j.ram ?? 0);
  return {
    energy: { unit: 'kWh', cpu: kwh(j.cpu), ram: kwh(j.ram), gpu: kwh(j.gpu), total: (totalJ ?? measuredSum) / J_PER_KWH },
    unmeasured,
  };
}

/** The first `<phase>_<what>_per_<suffix>` metric, preferring `prefer`; returns [what, value]. */
function perMetric(m: Record<string, number | null>, phase: string, suffix: 's' | 'kwh', prefer: string): [string, number] | null {
  const preferred = num(m, `${phase}_${prefer}_per_${suffix}`);
  if (preferred !== null) return [prefer, preferred];
  const re = new RegExp(`^${phase}_([a-z]+)_per_${suffix}$`);
  for (const k of Object.keys(m).sort()) {
    const hit = re.exec(k);
    const v = num(m, k);
    if (hit && v !== null) return [hit[1] as string, v];
  }
  return null;
}

function completeLatency(block: unknown): ObLatency | null {
  if (typeof block !== 'object' || block === null) return null;
  const b = block as Record<string, unknown>;
  const fields = ['count', 'total', 'mean', 'p50', 'p90', 'p95', 'p99', 'stdev', 'stdev_'] as const;
  if (!fields.every((f) => typeof b[f] === 'number' && Number.isFinite(b[f]))) return null;
  const unit = typeof b.unit === 'string' ? b.unit : 's';
  const f = unit === 's' ? 1 : unit === 'ms' ? 1e-3 : null;
  if (f === null) return null;
  const values = Array.isArray(b.values) ? b.values.filter((v): v is number => typeof v === 'number').map((v) => v * f) : [];
  const g = (k: (typeof fields)[number]): number => (b[k] as number) * (k === 'count' || k === 'stdev_' ? 1 : f);
  return { unit: 's', values, count: g('count'), total: g('total'), mean: g('mean'), p50: g('p50'), p90: g('p90'), p95: g('p95'), p99: g('p99'), stdev: g('stdev'), stdev_: g('stdev_') };
}

/** The phase block of an imported optimum-benchmark report kept as the run's `result`, if any. */
function importedPhase(result: unknown, phase: string): Record<string, unknown> | null {
  if (typeof result !== 'object' || result === null) return null;
  const top = result as Record<string, unknown>;
  const report = typeof top.report === 'object' && top.report !== null ? (top.report as Record<string, unknown>) : top;
  const ph = report[phase];
  return typeof ph === 'object' && ph !== null && !Array.isArray(ph) ? (ph as Record<string, unknown>) : null;
}

function memoryFor(m: Record<string, number | null>, phase: string): ObMemory | null {
  const out: ObMemory = { unit: 'MB', max_ram: null, max_global_vram: null, max_process_vram: null, max_reserved: null, max_allocated: null };
  let any = false;
  for (const k of OB_MEMORY_KEYS) {
    out[k] = num(m, `memory_${phase}_${k}_mb`);
    if (out[k] !== null) any = true;
  }
  return any ? out : null;
}

export interface ObExport {
  report: ObReport;
  /** Per phase, the energy domains written as 0.0 because lem did not measure them. */
  unmeasured_energy_domains: Record<string, string[]>;
}

/** The benchmark_report.json object for one run and what it had to fill (see the top of this file). */
export function toOptimumBenchmarkExport(run: RunRecord, options: ObViewOptions = {}): ObExport {
  const m = run.metrics;
  const repsRaw = num(m, 'repetitions');
  const reps = repsRaw !== null && repsRaw >= 1 ? repsRaw : 1;
  const requests = num(m, 'requests');
  const outputTokens = num(m, 'output_tokens');
  const prefillTime = num(m, 'prefill_time_s');
  const windowS = num(m, 'window_s');
  const samplesPerPass = requests === null ? null : requests / reps;
  const decodeVolume = outputTokens === null ? null : (outputTokens - (requests ?? 0)) / reps;
  const decodeTime = windowS !== null && prefillTime !== null ? windowS / reps - prefillTime : null;
  const report: ObReport = {};
  const unmeasured: Record<string, string[]> = {};
  for (const phase of OB_PHASES) {
    const e = energyFor(m, phase);
    const raw = options.latencyValues?.[phase];
    const latency = raw && raw.length > 0 ? latencyFromValues(raw) : completeLatency(importedPhase(run.result, phase)?.latency);
    let throughput: ObThroughput | null = null;
    let efficiency: ObEfficiency | null = null;
    const tp = perMetric(m, phase, 's', phase === 'decode' ? 'tokens' : 'samples');
    const ef = perMetric(m, phase, 'kwh', phase === 'decode' ? 'tokens' : 'samples');
    if (tp) throughput = { unit: `${tp[0]}/s`, value: tp[1] };
    if (ef) efficiency = { unit: `${ef[0]}/kWh`, value: ef[1] };
    const volume = phase === 'prefill' ? samplesPerPass : phase === 'decode' ? decodeVolume : null;
    const volumeUnit = phase === 'prefill' ? 'samples' : 'tokens';
    if (!throughput && volume !== null) {
      const t = phase === 'prefill' ? prefillTime : phase === 'decode' ? decodeTime : null;
      if (t !== null && t > 0) throughput = { unit: `${volumeUnit}/s`, value: volume / t };
    }
    if (!efficiency && e && volume !== null) efficiency = { unit: `${volumeUnit}/kWh`, value: e.energy.total > 0 ? volume / e.energy.total : 0 };
    const ph: ObPhase = { memory: memoryFor(m, phase), latency, throughput, energy: e?.energy ?? null, efficiency };
    if (ph.memory === null && ph.latency === null && ph.throughput === null && ph.energy === null && ph.efficiency === null) continue;
    report[phase] = ph;
    if (e && e.unmeasured.length > 0) unmeasured[phase] = e.unmeasured;
  }
  return { report, unmeasured_energy_domains: unmeasured };
}

/** The benchmark_report.json object for one run. */
export function toOptimumBenchmarkReport(run: RunRecord, options: ObViewOptions = {}): ObReport {
  return toOptimumBenchmarkExport(run, options).report;
}
