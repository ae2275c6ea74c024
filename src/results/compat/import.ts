/**
 * Importers: results of other tools as lem RunRecords (lem metric names and units), so they can be
 * aggregated, compared and reported next to lem's own runs.
 *
 * - optimum-benchmark `benchmark_report.json` / `benchmark.json` → one run: import-optimum-benchmark.ts
 * - ai_energy_benchmarks results CSV → one run per row: import-ai-energy-benchmarks.ts
 * - CSV parsing shared by the importers (and used by tests): csv.ts
 *
 * This module is the entry point: it re-exports the importers and their common result type (imported-runs.ts).
 * `lem results import` and `results compare FILE` read through src/results/import/ (file discovery,
 * format detection, repetitions as runs, provenance), which uses these per-format mappings.
 */
export { parseCsv, parseCsvStrict, parseNumber } from './csv.js';
export { importOptimumBenchmarkReport, readOptimumBenchmarkReport, type ObImportIds } from './import-optimum-benchmark.js';
export { importAiEnergyBenchmarksCsv, importAiEnergyBenchmarksRows, readAiEnergyBenchmarksCsv, type AebImportOptions } from './import-ai-energy-benchmarks.js';
export type { ImportedRuns } from './imported-runs.js';
