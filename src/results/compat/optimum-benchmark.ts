/**
 * optimum-benchmark `benchmark_report.json` view of a lem run.
 *
 * The report has one object per phase, each with exactly `memory`, `latency`, `throughput`,
 * `energy`, `efficiency` (null when not measured), in optimum-benchmark's units:
 *   energy      {unit: "kWh", cpu, ram, gpu, total}
 *   efficiency  {unit: "tokens/kWh", value = tokens / energy.total}
 *   latency     {unit: "s", values[], count, total, mean, p50, p90, p95, p99, stdev, stdev_}
 *               (stdev is the population std, stdev_ = 100·stdev/|mean| in %, as optimum-benchmark)
 *   throughput  {unit: "tokens/s", value}
 *   memory      {unit: "MB", max_ram, max_global_vram, max_process_vram, max_reserved, max_allocated}
 *
 * Phases written (lem metric → field); r = the `repetitions` metric (passes over the prompt set in
 * the window, 1 when absent). lem's phase energies are per pass, so phase volumes are per pass too:
 *   prefill    energy: energy_<d>_prefill_j, and gpu from lem's energy_prefill_j (per-pass GPU energy);
 *              latency: raw values, or ttft_{mean,p50,p90,p95,p99,std}_s;
 *              throughput: prefill_tokens_per_s, else (input_tokens / r) / prefill_time_s;
 *              efficiency: (input_tokens / r) / energy.total; memory: memory_prefill_<key>_mb.
 *              (written only when energy, latency, throughput or memory exists)
 *   decode     energy: energy_<d>_decode_j, and gpu from energy_decode_j;
 *              latency: raw values, or latency_decode_{stat}_s;
 *              throughput: decode_tokens_per_s, else (output_tokens / r) / (window_s / r − prefill_time_s);
 *              efficiency: (output_tokens / r) / energy.total; memory: memory_decode_<key>_mb.
 *              (written only when energy, latency, throughput or memory exists)
 *   per_token  latency: raw values, or itl_{stat}_s.                  (only when it exists)
 *   run        the whole measured window (per-run totals): energy_<d>_j; latency: raw values or
 *              latency_{stat}_s; throughput: output_tokens_per_s; efficiency: output_tokens /
 *              energy.total; memory: memory_<key>_mb.                  (always written)
 * Efficiency needs energy.total: lem measures phase energies on the GPU only, so phase efficiency is
 * null unless a total is known (it is never computed from GPU energy alone).
 * where <d> is gpu, cpu, dram (→ "ram") or total. Energy `total` falls back to the sum of gpu, cpu
 * and ram only when all three are measured. The `run` phase name does not collide with
 * optimum-benchmark's phases, so AI Energy Score's summariser (which sums preprocess/prefill/decode)
 * never double-counts it.
 */
import type { RunRecord } from '../aggregate.js';

export interface ObEnergy {
  unit: 'kWh';
  cpu: number | null;
  ram: number | null;
  gpu: number | null;
  total: number | null;
}
export interface ObEfficiency {
  unit: string;
  value: number;
}
export interface ObLatency {
  unit: 's';
  values: number[];
  count: number | null;
  total: number | null;
  mean: number | null;
  p50: number | null;
  p90: number | null;
  p95: number | null;
  p99: number | null;
  stdev: number | null;
  stdev_: number | null;
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
  latencyValues?: Partial<Record<'prefill' | 'decode' | 'per_token' | 'run', readonly number[]>>;
}

/** optimum-benchmark's Latency.from_values: NumPy linear percentiles, population stdev, stdev_ in %. */
export function latencyFromValues(values: readonly number[]): ObLatency {
  const xs = values.filter((v) => Number.isFinite(v));
  const n = xs.length;
  if (n === 0) {
    return { unit: 's', values: [], count: 0, total: 0, mean: null, p50: null, p90: null, p95: null, p99: null, stdev: null, stdev_: null };
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

function latencyFromMetrics(metrics: Record<string, number | null>, prefix: string): ObLatency | null {
  const stats: Record<string, number | null> = {};
  let any = false;
  for (const s of OB_LATENCY_STATS) {
    stats[s] = num(metrics, `${prefix}_${s}_s`);
    if (stats[s] !== null) any = true;
  }
  const std = num(metrics, `${prefix}_std_s`);
  if (!any && std === null) return null;
  const mean = stats.mean ?? null;
  return {
    unit: 's',
    values: [],
    count: null,
    total: null,
    mean,
    p50: stats.p50 ?? null,
    p90: stats.p90 ?? null,
    p95: stats.p95 ?? null,
    p99: stats.p99 ?? null,
    stdev: std,
    stdev_: std !== null && mean !== null && mean !== 0 ? (std / Math.abs(mean)) * 100 : null,
  };
}

function energyFromMetrics(metrics: Record<string, number | null>, suffix: string): ObEnergy | null {
  const names = { gpu: `energy_gpu${suffix}_j`, cpu: `energy_cpu${suffix}_j`, ram: `energy_dram${suffix}_j`, total: `energy_total${suffix}_j` };
  const ramAlt = `energy_ram${suffix}_j`;
  const toKwh = (v: number | null): number | null => (v === null ? null : v / J_PER_KWH);
  const gpu = toKwh(num(metrics, names.gpu));
  const cpu = toKwh(num(metrics, names.cpu));
  const ram = toKwh(num(metrics, names.ram) ?? num(metrics, ramAlt));
  let total = toKwh(num(metrics, names.total));
  if (total === null && gpu !== null && cpu !== null && ram !== null) total = gpu + cpu + ram;
  if (gpu === null && cpu === null && ram === null && total === null) return null;
  return { unit: 'kWh', cpu, ram, gpu, total };
}

function memoryFromMetrics(metrics: Record<string, number | null>, infix: string): ObMemory | null {
  const m: ObMemory = { unit: 'MB', max_ram: null, max_global_vram: null, max_process_vram: null, max_reserved: null, max_allocated: null };
  let any = false;
  for (const k of OB_MEMORY_KEYS) {
    m[k] = num(metrics, `memory${infix}_${k}_mb`);
    if (m[k] !== null) any = true;
  }
  return any ? m : null;
}

function phase(
  metrics: Record<string, number | null>,
  p: {
    energySuffix: string | null;
    /** lem's per-pass GPU phase energy metric, used when energy_gpu_<phase>_j is absent. */
    gpuPhaseMetric?: string;
    latency: ObLatency | null;
    throughput: number | null;
    volume: number | null;
    memoryInfix: string | null;
  },
): ObPhase {
  let energy = p.energySuffix !== null ? energyFromMetrics(metrics, p.energySuffix) : null;
  if (p.gpuPhaseMetric && (energy === null || energy.gpu === null)) {
    const j = num(metrics, p.gpuPhaseMetric);
    if (j !== null) energy = { ...(energy ?? { unit: 'kWh', cpu: null, ram: null, gpu: null, total: null }), gpu: j / J_PER_KWH };
  }
  const tput = p.throughput;
  const volume = p.volume;
  const efficiency =
    energy && energy.total !== null && energy.total > 0 && volume !== null ? { unit: 'tokens/kWh', value: volume / energy.total } : null;
  return {
    memory: p.memoryInfix !== null ? memoryFromMetrics(metrics, p.memoryInfix) : null,
    latency: p.latency,
    throughput: tput === null ? null : { unit: 'tokens/s', value: tput },
    energy,
    efficiency,
  };
}

function isEmpty(ph: ObPhase): boolean {
  return ph.memory === null && ph.latency === null && ph.throughput === null && ph.energy === null && ph.efficiency === null;
}

/** The benchmark_report.json object for one run (see the phase mapping at the top of this file). */
export function toOptimumBenchmarkReport(run: RunRecord, options: ObViewOptions = {}): ObReport {
  const m = run.metrics;
  const lat = (key: 'prefill' | 'decode' | 'per_token' | 'run', prefix: string): ObLatency | null => {
    const raw = options.latencyValues?.[key];
    return raw && raw.length > 0 ? latencyFromValues(raw) : latencyFromMetrics(m, prefix);
  };
  const repsRaw = num(m, 'repetitions');
  const reps = repsRaw !== null && repsRaw >= 1 ? repsRaw : 1;
  const inputTokens = num(m, 'input_tokens');
  const outputTokens = num(m, 'output_tokens');
  const prefillTime = num(m, 'prefill_time_s');
  const windowS = num(m, 'window_s');
  const perPassIn = inputTokens === null ? null : inputTokens / reps;
  const perPassOut = outputTokens === null ? null : outputTokens / reps;
  const decodeTime = windowS !== null && prefillTime !== null ? windowS / reps - prefillTime : null;
  const report: ObReport = {};
  const hasCore = (ph: ObPhase): boolean => ph.energy !== null || ph.latency !== null || ph.throughput !== null || ph.memory !== null;

  const prefill = phase(m, {
    energySuffix: '_prefill',
    gpuPhaseMetric: 'energy_prefill_j',
    latency: lat('prefill', 'ttft'),
    throughput: num(m, 'prefill_tokens_per_s') ?? (perPassIn !== null && prefillTime !== null && prefillTime > 0 ? perPassIn / prefillTime : null),
    volume: perPassIn,
    memoryInfix: '_prefill',
  });
  if (hasCore(prefill)) report.prefill = prefill;
  const decode = phase(m, {
    energySuffix: '_decode',
    gpuPhaseMetric: 'energy_decode_j',
    latency: lat('decode', 'latency_decode'),
    throughput: num(m, 'decode_tokens_per_s') ?? (perPassOut !== null && decodeTime !== null && decodeTime > 0 ? perPassOut / decodeTime : null),
    volume: perPassOut,
    memoryInfix: '_decode',
  });
  if (hasCore(decode)) report.decode = decode;
  const perToken = phase(m, { energySuffix: null, latency: lat('per_token', 'itl'), throughput: null, volume: null, memoryInfix: null });
  if (!isEmpty(perToken)) report.per_token = perToken;
  report.run = phase(m, {
    energySuffix: '',
    latency: lat('run', 'latency'),
    throughput: num(m, 'output_tokens_per_s'),
    volume: outputTokens,
    memoryInfix: '',
  });
  return report;
}
