/**
 * ai_energy_benchmarks results CSV → lem runs (one per row; the column mapping is
 * ../compat/import-ai-energy-benchmarks.ts). Read with csv-parse: a malformed quote is an error
 * with its line; ';'-separated files (European locales) are detected, and their decimal commas
 * ("5,25") read as numbers. A CSV without the results columns (summary_*, energy_*) is not a result.
 */
import { importAiEnergyBenchmarksRows } from '../compat/import-ai-energy-benchmarks.js';
import { parseCsvStrict } from '../compat/csv.js';
import { sortedMetrics, type ImportedExperiment, type ImportedRun } from './types.js';

export type AebRead =
  | { ok: true; experiments: ImportedExperiment[]; runs: ImportedRun[]; version: string | null; warnings: string[]; delimiter: ',' | ';' }
  | { ok: false; looksLike: string; why: string };

export function readAebCsv(text: string): AebRead {
  const { rows: raw, delimiter } = parseCsvStrict(text);
  const rows = delimiter === ';' ? raw.map((r) => r.map((c) => (/^\s*[+-]?\d+,\d+\s*$/.test(c) ? c.replace(',', '.') : c))) : raw;
  if (rows.length === 0) return { ok: false, looksLike: 'an empty CSV', why: 'it has no header and no rows' };
  const header = rows[0] as string[];
  if (header[0] === 'run_id' && header.includes('experiment_id')) {
    return { ok: false, looksLike: "lem's own CSV export (`lem results export`)", why: 'its runs are already in a lem manifest; compare or show that campaign instead' };
  }
  const known = header.filter((h) => /^summary_/.test(h) || /^energy_.+_energy_k?wh$/.test(h));
  if (known.length === 0) {
    const cols = header.slice(0, 6).join(', ') + (header.length > 6 ? ', …' : '');
    return {
      ok: false,
      looksLike: `a CSV with ${rows.length - 1} data row(s) and columns ${cols}`,
      why: 'an ai_energy_benchmarks results CSV has summary_* and energy_* columns (e.g. summary_total_prompts, energy_gpu_energy_wh); this one has none, so it holds no measurement (a prompt or load file?)',
    };
  }
  if (rows.length === 1) return { ok: false, looksLike: 'an ai_energy_benchmarks results CSV header', why: 'it has no data rows' };
  const imported = importAiEnergyBenchmarksRows(rows);
  const index = new Map(imported.experiments.map((e, i) => [e.id, i]));
  const experiments: ImportedExperiment[] = imported.experiments.map((e) => ({ name: e.name, backend: e.backend, config: e.config as Record<string, unknown> }));
  const runs: ImportedRun[] = imported.runs.map((r) => {
    const res = r.result as { line?: number; timestamp?: string | null; unmeasured?: Record<string, string> };
    return {
      experiment: index.get(r.experimentId) ?? 0,
      status: r.status === 'failed' ? 'failed' : 'succeeded',
      metrics: sortedMetrics(r.metrics),
      flags: [...r.flags],
      unmeasured: res.unmeasured ?? {},
      startedAt: null,
      endedAt: res.timestamp ?? null,
      origin: `line ${res.line ?? '?'}`,
    };
  });
  const warnings = [...imported.warnings];
  if (imported.ignoredColumns && imported.ignoredColumns.length > 0) warnings.push(`columns not mapped: ${imported.ignoredColumns.join(', ')}`);
  if (runs.length === 0) return { ok: false, looksLike: 'an ai_energy_benchmarks results CSV', why: `none of its ${rows.length - 1} row(s) could be read (${warnings.join('; ')})` };
  return { ok: true, experiments, runs, version: null, warnings, delimiter };
}
