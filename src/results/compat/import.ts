/**
 * Importers: results of other tools as lem RunRecords (lem metric names and units), so they can be
 * aggregated, compared and reported next to lem's own runs.
 *
 * optimum-benchmark `benchmark_report.json` (or `benchmark.json` = {config, report}) → one run.
 *   Per phase P (load_model, preprocess, prefill, decode, per_token, forward, call, ...):
 *     energy {unit kWh|Wh|J, gpu, cpu, ram, total} → energy_{gpu,cpu,dram,total}_<P>_j
 *     latency {unit s|ms, mean, p50, p90, p95, p99, stdev} → latency_<P>_{mean,p50,p90,p95,p99,std}_s
 *       except prefill → ttft_<stat>_s and per_token → itl_<stat>_s
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
 *
 * ai_energy_benchmarks results CSV (nested result dict flattened with "_", one row per benchmark
 * run, `timestamp` last) → one run per row; rows with the same config_name/config_backend/config_model
 * form one experiment (ids `<prefix>1`, `<prefix>2`, … in order of first appearance; cycles 1, 2, … in
 * row order). Columns:
 *     energy_gpu_energy_wh (or _kwh)      → energy_gpu_j        (×3600 / ×3.6e6)
 *     energy_cpu_energy_wh (or _kwh)      → energy_cpu_j
 *     energy_ram_energy_wh (or _kwh)      → energy_dram_j
 *     energy_total_energy_wh (or _kwh)    → energy_total_j
 *     energy_duration_seconds             → window_s            (the energy tracker's window)
 *     energy_emissions_g_co2eq (or kg)    → emissions_g_co2eq
 *     summary_total_duration_seconds      → duration_s
 *     summary_avg_latency_seconds         → latency_mean_s
 *     summary_total_prompts               → requests_total
 *     summary_successful_prompts          → requests            (lem counts completed requests)
 *     summary_failed_prompts              → failed_requests
 *     summary_total_tokens                → total_tokens
 *     summary_total_prompt_tokens         → input_tokens
 *     summary_total_completion_tokens     → output_tokens
 *     summary_throughput_tokens_per_second→ tokens_per_s        (input + output tokens per second, as lem's)
 *     gpu_stats_gpu_<i>_<key> (numeric)   → gpu<i>_<key>
 *   derived, as lem's worker defines them: output_tokens_per_s = output_tokens / duration_s;
 *   j_per_output_token = energy_gpu_j / output_tokens; j_per_output_token_total = energy_total_j / output_tokens.
 *   A non-empty energy_error makes every energy metric null (flag `energy_error`); failed prompts
 *   add the flag `failed_requests`; no successful prompt makes the run 'failed'. Unmapped columns
 *   are listed in `ignoredColumns`.
 */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import type { ExperimentRecord, RunRecord } from '../aggregate.js';

export interface ImportedRuns {
  experiments: ExperimentRecord[];
  runs: RunRecord[];
  warnings: string[];
  ignoredColumns?: string[];
}

// ---------------------------------------------------------------------------------------------
// CSV parsing (RFC 4180)
// ---------------------------------------------------------------------------------------------

/** Parses CSV text into rows of fields. Handles quotes, doubled quotes, CRLF/LF and a UTF-8 BOM. */
export function parseCsv(text: string): string[][] {
  const s = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let inQuotes = false;
  let i = 0;
  const endField = (): void => {
    row.push(field);
    field = '';
  };
  const endRow = (): void => {
    endField();
    rows.push(row);
    row = [];
  };
  while (i < s.length) {
    const c = s[i] as string;
    if (inQuotes) {
      if (c === '"') {
        if (s[i + 1] === '"') {
          field += '"';
          i += 2;
          continue;
        }
        inQuotes = false;
        i++;
        continue;
      }
      field += c;
      i++;
      continue;
    }
    if (c === '"' && field === '') {
      inQuotes = true;
      i++;
    } else if (c === ',') {
      endField();
      i++;
    } else if (c === '\r' && s[i + 1] === '\n') {
      endRow();
      i += 2;
    } else if (c === '\n' || c === '\r') {
      endRow();
      i++;
    } else {
      field += c;
      i++;
    }
  }
  if (field !== '' || row.length > 0) endRow();
  return rows;
}

/** A CSV/JSON cell as a finite number, or null ('' / NaN / text). */
export function parseNumber(v: unknown): number | null {
  if (typeof v === 'number') return Number.isFinite(v) ? v : null;
  if (typeof v !== 'string') return null;
  const t = v.trim();
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(t)) return null;
  const n = Number(t);
  return Number.isFinite(n) ? n : null;
}

// ---------------------------------------------------------------------------------------------
// optimum-benchmark
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// ai_energy_benchmarks
// ---------------------------------------------------------------------------------------------

const AEB_DIRECT: Readonly<Record<string, string>> = {
  energy_duration_seconds: 'window_s',
  summary_total_duration_seconds: 'duration_s',
  summary_avg_latency_seconds: 'latency_mean_s',
  summary_total_prompts: 'requests_total',
  summary_successful_prompts: 'requests',
  summary_failed_prompts: 'failed_requests',
  summary_total_tokens: 'total_tokens',
  summary_total_prompt_tokens: 'input_tokens',
  summary_total_completion_tokens: 'output_tokens',
  summary_throughput_tokens_per_second: 'tokens_per_s',
};

const AEB_ENERGY: readonly { domain: string; metric: string }[] = [
  { domain: 'gpu', metric: 'energy_gpu_j' },
  { domain: 'cpu', metric: 'energy_cpu_j' },
  { domain: 'ram', metric: 'energy_dram_j' },
  { domain: 'total', metric: 'energy_total_j' },
];

/** Columns understood without becoming metrics (descriptive or covered by another column). */
const AEB_KNOWN_TEXT = /^(config_|backend_info_|metrics_metadata_|timestamp$|energy_(project_name|country|region|error|energy_kwh|energy_wh|emissions_kg_co2eq|carbon_intensity_g_per_kwh)$)/;

export interface AebImportOptions {
  /** Experiment id prefix; default 'aeb-'. */
  experimentPrefix?: string;
}

/** Imports an ai_energy_benchmarks results CSV (one run per row). */
export function importAiEnergyBenchmarksCsv(text: string, opts: AebImportOptions = {}): ImportedRuns {
  const prefix = opts.experimentPrefix ?? 'aeb-';
  const rows = parseCsv(text).filter((r) => !(r.length === 1 && r[0] === ''));
  const warnings: string[] = [];
  if (rows.length === 0) return { experiments: [], runs: [], warnings: ['empty CSV'], ignoredColumns: [] };
  const header = rows[0] as string[];
  const experiments: ExperimentRecord[] = [];
  const runs: RunRecord[] = [];
  const expByKey = new Map<string, { id: string; cycles: number }>();
  const ignored = new Set<string>();

  rows.slice(1).forEach((cells, i) => {
    const line = i + 2;
    if (cells.length !== header.length) {
      warnings.push(`line ${line}: ${cells.length} fields but the header has ${header.length} (rows appended with a different column set?); skipped`);
      return;
    }
    const row: Record<string, string> = {};
    header.forEach((h, j) => (row[h] = cells[j] as string));
    const get = (k: string): number | null => parseNumber(row[k]);
    const metrics: Record<string, number | null> = {};
    const flags: string[] = [];
    const unmeasured: Record<string, string> = {};

    const energyError = (row.energy_error ?? '').trim();
    for (const { domain, metric } of AEB_ENERGY) {
      const wh = get(`energy_${domain}_energy_wh`);
      const kwh = get(`energy_${domain}_energy_kwh`);
      const has = `energy_${domain}_energy_wh` in row || `energy_${domain}_energy_kwh` in row;
      if (!has) continue;
      if (energyError) {
        metrics[metric] = null;
        unmeasured[metric] = `energy_error: ${energyError}`;
      } else {
        const j = wh !== null ? wh * 3600 : kwh !== null ? kwh * 3_600_000 : null;
        metrics[metric] = j;
        if (j === null) unmeasured[metric] = 'empty in the source CSV';
      }
    }
    if (energyError) flags.push('energy_error');
    const g = get('energy_emissions_g_co2eq');
    const kg = get('energy_emissions_kg_co2eq');
    if (!energyError && (g !== null || kg !== null)) metrics.emissions_g_co2eq = g ?? (kg as number) * 1000;

    for (const [col, metric] of Object.entries(AEB_DIRECT)) {
      if (col in row) metrics[metric] = get(col);
    }
    for (const col of header) {
      const m = /^gpu_stats_gpu_(\d+)_(.+)$/.exec(col);
      if (m) {
        const v = get(col);
        if (v !== null) metrics[`gpu${m[1]}_${m[2]}`] = v;
        continue;
      }
      const mapped = col in AEB_DIRECT || /^energy_(gpu|cpu|ram|total)_energy_(wh|kwh)$/.test(col) || /^energy_emissions_g_co2eq$/.test(col);
      if (!mapped && !AEB_KNOWN_TEXT.test(col)) ignored.add(col);
    }
    const out = metrics.output_tokens;
    const dur = metrics.duration_s;
    if (typeof out === 'number' && typeof dur === 'number' && dur > 0) metrics.output_tokens_per_s = out / dur;
    const gpu = metrics.energy_gpu_j;
    const tot = metrics.energy_total_j;
    if (typeof out === 'number' && out > 0 && typeof gpu === 'number') metrics.j_per_output_token = gpu / out;
    if (typeof out === 'number' && out > 0 && typeof tot === 'number') metrics.j_per_output_token_total = tot / out;

    const failed = metrics.failed_requests;
    if (typeof failed === 'number' && failed > 0) flags.push('failed_requests');
    const ok = metrics.requests;
    const status: RunRecord['status'] = ok === 0 ? 'failed' : 'succeeded';

    const name = row.config_name ?? '';
    const backend = row.config_backend ?? '';
    const model = row.config_model ?? '';
    const key = JSON.stringify([name, backend, model]);
    let exp = expByKey.get(key);
    if (!exp) {
      exp = { id: `${prefix}${expByKey.size + 1}`, cycles: 0 };
      expByKey.set(key, exp);
      const backendInfo: Record<string, string> = {};
      const metadata: Record<string, string> = {};
      for (const h of header) {
        if (h.startsWith('backend_info_')) backendInfo[h.slice('backend_info_'.length)] = row[h] as string;
        if (h.startsWith('metrics_metadata_')) metadata[h.slice('metrics_metadata_'.length)] = row[h] as string;
      }
      experiments.push({
        id: exp.id,
        name: name || model || exp.id,
        backend: backend || 'unknown',
        config: {
          source: 'ai_energy_benchmarks',
          name,
          backend,
          model,
          dataset: row.config_dataset ?? null,
          num_samples: get('config_num_samples'),
          backend_info: backendInfo,
          metrics_metadata: metadata,
        },
      });
    }
    exp.cycles++;
    const sorted: Record<string, number | null> = {};
    for (const k of Object.keys(metrics).sort()) sorted[k] = metrics[k] ?? null;
    runs.push({
      runId: `${exp.id}-c${exp.cycles}`,
      experimentId: exp.id,
      cycle: exp.cycles,
      status,
      metrics: sorted,
      flags,
      resultPath: null,
      result: { source: 'ai_energy_benchmarks', line, timestamp: row.timestamp ?? null, unmeasured, row },
    });
  });
  return { experiments, runs, warnings, ignoredColumns: [...ignored].sort() };
}

/** Reads and imports an ai_energy_benchmarks results CSV file. */
export async function readAiEnergyBenchmarksCsv(path: string, opts: AebImportOptions = {}): Promise<ImportedRuns> {
  const imported = importAiEnergyBenchmarksCsv(await readFile(path, 'utf8'), opts);
  for (const r of imported.runs) r.resultPath = path;
  return imported;
}
