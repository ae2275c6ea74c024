/**
 * Importer: an ai_energy_benchmarks results CSV as lem runs (lem metric names and units).
 *
 * ai_energy_benchmarks results CSV (parsed with csv-parse, ',' or ';' detected; nested result dict flattened with "_", one row per benchmark
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
import type { ExperimentRecord, RunRecord } from '../aggregate.js';
import { parseCsvStrict, parseNumber } from './csv.js';
import type { ImportedRuns } from './imported-runs.js';

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
  return importAiEnergyBenchmarksRows(parseCsvStrict(text).rows, opts);
}

/** The same from parsed rows (header first); a malformed CSV fails in parseCsvStrict with its line. */
export function importAiEnergyBenchmarksRows(parsedRows: readonly string[][], opts: AebImportOptions = {}): ImportedRuns {
  const prefix = opts.experimentPrefix ?? 'aeb-';
  const rows = parsedRows.filter((r) => !(r.length === 1 && r[0] === ''));
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
