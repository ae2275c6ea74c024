/**
 * Importer: an optimum-benchmark report as one lem run (lem metric names and units).
 *
 * optimum-benchmark `benchmark_report.json` (or `benchmark.json` = {config, report}) → one run.
 *   Per phase P (load_model, preprocess, prefill, decode, per_token, forward, call, ...):
 *     energy {unit kWh|Wh|J, gpu, cpu, ram, total} → energy_{gpu,cpu,dram,total}_<P>_j
 *       and, as lem's worker names per-pass GPU phase energies, energy_<P>_j = gpu (prefill, decode, preprocess)
 *     latency {unit s|ms, mean, p50, p90, p95, p99, stdev} → latency_<P>_{mean,p50,p90,p95,p99,std}_s
 *       except prefill → ttft_<stat>_s and per_token → itl_<stat>_s
 *     throughput {unit "<x>/s", value} → <P>_<x>_per_s (e.g. decode_tokens_per_s)
 *     efficiency {unit "<x>/kWh", value} → <P>_<x>_per_kwh; for tokens also
 *       j_per_<P>_token = 3.6e6 / value (decode → j_per_decode_token, prefill → j_per_prefill_token)
 *     memory {unit MB, max_*} → memory_<P>_<key>_mb
 *   The phase named `run` (lem's own export, see optimum-benchmark.ts) maps to the un-phased names
 *   (energy_gpu_j, latency_p50_s, output_tokens_per_s, tokens_per_kwh + j_per_output_token_total,
 *   memory_max_ram_mb, ...), so lem → OB → lem round-trips.
 *   Without a `run` phase, whole-window energy_<d>_j = prefill + decode when both are measured
 *   (optimum-benchmark computes decode as generate − prefill, so the sum is the generate window).
 *   Extra keys (e.g. `measures` in AI Energy Score's fork) are ignored. Negative energies are kept
 *   and flagged `negative_energy`.
 */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import type { ImportedRuns } from './imported-runs.js';

const num = z.number().nullable().optional();
const ObEnergyIn = z.object({ unit: z.string(), cpu: num, ram: num, gpu: num, total: num });
const ObLatencyIn = z.object({
  unit: z.string(),
  values: z.array(z.number()).nullable().optional(),
  count: num,
  total: num,
  mean: num,
  p50: num,
  p90: num,
  p95: num,
  p99: num,
  stdev: num,
  stdev_: num,
});
const ObValueIn = z.object({ unit: z.string(), value: num });
const ObMemoryIn = z.object({
  unit: z.string(),
  max_ram: num,
  max_global_vram: num,
  max_process_vram: num,
  max_reserved: num,
  max_allocated: num,
});
const ObPhaseIn = z.object({
  memory: ObMemoryIn.nullable().optional(),
  latency: ObLatencyIn.nullable().optional(),
  throughput: ObValueIn.nullable().optional(),
  energy: ObEnergyIn.nullable().optional(),
  efficiency: ObValueIn.nullable().optional(),
});
const PHASE_KEYS = ['memory', 'latency', 'throughput', 'energy', 'efficiency'];

const ENERGY_TO_J: Record<string, number> = { kwh: 3_600_000, wh: 3600, j: 1 };
const TIME_TO_S: Record<string, number> = { s: 1, ms: 1e-3, us: 1e-6, ns: 1e-9 };

function unitSlug(unit: string): string {
  return unit.trim().toLowerCase().replace(/[^a-z0-9]+/g, '_').replace(/^_|_$/g, '');
}

export interface ObImportIds {
  runId: string;
  experimentId: string;
  cycle?: number;
  experimentName?: string;
  backend?: string;
}

/** Imports one optimum-benchmark report (parsed JSON) as one succeeded run. */
export function importOptimumBenchmarkReport(json: unknown, ids: ObImportIds): ImportedRuns {
  const warnings: string[] = [];
  const flags = new Set<string>();
  const metrics: Record<string, number | null> = {};
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error('benchmark report: expected a JSON object');
  const top = json as Record<string, unknown>;
  const wrapped = typeof top.report === 'object' && top.report !== null && !Array.isArray(top.report);
  const report = (wrapped ? top.report : top) as Record<string, unknown>;
  const config = wrapped ? (top.config ?? null) : null;

  const energyByPhase: Record<string, Record<'gpu' | 'cpu' | 'dram' | 'total', number | null>> = {};
  for (const [phaseName, value] of Object.entries(report)) {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) continue;
    if (!PHASE_KEYS.some((k) => k in value)) continue;
    const parsed = ObPhaseIn.safeParse(value);
    if (!parsed.success) {
      warnings.push(`phase ${phaseName}: not an optimum-benchmark phase (${parsed.error.issues[0]?.message ?? 'invalid'}); skipped`);
      continue;
    }
    const ph = parsed.data;
    const isRun = phaseName === 'run';
    const p = unitSlug(phaseName);
    const mid = isRun ? '' : `_${p}`;

    if (ph.energy) {
      const f = ENERGY_TO_J[ph.energy.unit.trim().toLowerCase()];
      if (f === undefined) warnings.push(`phase ${phaseName}: unknown energy unit ${ph.energy.unit}; energy skipped`);
      else {
        const e: Record<'gpu' | 'cpu' | 'dram' | 'total', number | null> = { gpu: null, cpu: null, dram: null, total: null };
        for (const [src, dst] of [['gpu', 'gpu'], ['cpu', 'cpu'], ['ram', 'dram'], ['total', 'total']] as const) {
          const v = ph.energy[src];
          const j = typeof v === 'number' ? v * f : null;
          e[dst] = j;
          metrics[`energy_${dst}${mid}_j`] = j;
          if (j !== null && j < 0) {
            flags.add('negative_energy');
            warnings.push(`phase ${phaseName}: negative ${src} energy ${v}`);
          }
        }
        energyByPhase[phaseName] = e;
        if (!isRun && (phaseName === 'prefill' || phaseName === 'decode' || phaseName === 'preprocess')) metrics[`energy_${p}_j`] = e.gpu;
      }
    }
    if (ph.latency) {
      const f = TIME_TO_S[ph.latency.unit.trim().toLowerCase()];
      if (f === undefined) warnings.push(`phase ${phaseName}: unknown latency unit ${ph.latency.unit}; latency skipped`);
      else {
        const prefix = isRun ? 'latency' : phaseName === 'prefill' ? 'ttft' : phaseName === 'per_token' ? 'itl' : `latency_${p}`;
        for (const s of ['mean', 'p50', 'p90', 'p95', 'p99'] as const) {
          const v = ph.latency[s];
          if (typeof v === 'number') metrics[`${prefix}_${s}_s`] = v * f;
        }
        if (typeof ph.latency.stdev === 'number') metrics[`${prefix}_std_s`] = ph.latency.stdev * f;
      }
    }
    if (ph.throughput && typeof ph.throughput.value === 'number') {
      const m = /^(.+?)\s*\/\s*s$/.exec(ph.throughput.unit.trim());
      if (!m) warnings.push(`phase ${phaseName}: unknown throughput unit ${ph.throughput.unit}; skipped`);
      else {
        const what = unitSlug(m[1] as string);
        metrics[isRun ? (what === 'tokens' ? 'output_tokens_per_s' : `${what}_per_s`) : `${p}_${what}_per_s`] = ph.throughput.value;
      }
    }
    if (ph.efficiency && typeof ph.efficiency.value === 'number') {
      const m = /^(.+?)\s*\/\s*kwh$/i.exec(ph.efficiency.unit.trim());
      if (!m) warnings.push(`phase ${phaseName}: unknown efficiency unit ${ph.efficiency.unit}; skipped`);
      else {
        const what = unitSlug(m[1] as string);
        metrics[`${isRun ? '' : `${p}_`}${what}_per_kwh`] = ph.efficiency.value;
        if (what === 'tokens' && ph.efficiency.value > 0) {
          metrics[isRun ? 'j_per_output_token_total' : `j_per_${p}_token`] = 3_600_000 / ph.efficiency.value;
        }
      }
    }
    if (ph.memory) {
      if (ph.memory.unit.trim().toUpperCase() !== 'MB') warnings.push(`phase ${phaseName}: memory unit ${ph.memory.unit} (expected MB); skipped`);
      else {
        for (const k of ['max_ram', 'max_global_vram', 'max_process_vram', 'max_reserved', 'max_allocated'] as const) {
          const v = ph.memory[k];
          if (typeof v === 'number') metrics[`memory${mid}_${k}_mb`] = v;
        }
      }
    }
  }
  if (!('run' in energyByPhase)) {
    const pre = energyByPhase.prefill;
    const dec = energyByPhase.decode;
    if (pre && dec) {
      for (const d of ['gpu', 'cpu', 'dram', 'total'] as const) {
        const a = pre[d];
        const b = dec[d];
        if (a !== null && b !== null) metrics[`energy_${d}_j`] = a + b;
      }
    }
  }
  const sortedMetrics: Record<string, number | null> = {};
  for (const k of Object.keys(metrics).sort()) sortedMetrics[k] = metrics[k] ?? null;
  const backend = ids.backend ?? obBackendName(config) ?? 'optimum-benchmark';
  return {
    experiments: [{ id: ids.experimentId, name: ids.experimentName ?? ids.experimentId, backend, config: { source: 'optimum-benchmark', config } }],
    runs: [
      {
        runId: ids.runId,
        experimentId: ids.experimentId,
        cycle: ids.cycle ?? 1,
        status: 'succeeded',
        metrics: sortedMetrics,
        flags: [...flags].sort(),
        resultPath: null,
        result: json,
      },
    ],
    warnings,
  };
}

function obBackendName(config: unknown): string | null {
  if (typeof config !== 'object' || config === null) return null;
  const b = (config as Record<string, unknown>).backend;
  if (typeof b !== 'object' || b === null) return null;
  const name = (b as Record<string, unknown>).name;
  return typeof name === 'string' ? name : null;
}

/** Reads and imports a benchmark_report.json / benchmark.json file. */
export async function readOptimumBenchmarkReport(path: string, ids: ObImportIds): Promise<ImportedRuns> {
  const text = await readFile(path, 'utf8');
  const imported = importOptimumBenchmarkReport(JSON.parse(text) as unknown, ids);
  for (const r of imported.runs) r.resultPath = path;
  return imported;
}
