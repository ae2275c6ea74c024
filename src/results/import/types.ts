/**
 * The common shape every result importer produces: one source file's experiments and runs, in lem's
 * metric names and units, with its provenance. Nothing here touches the manifest; recording an
 * import is src/campaign/import.ts.
 */

export const SOURCE_TOOLS = ['optimum-benchmark', 'ai-energy-score', 'ai_energy_benchmarks', 'llenergymeasure-v1', 'llenergymeasure-v2'] as const;
export type SourceTool = (typeof SOURCE_TOOLS)[number];

/** An experiment as the source described it; `config` is what keys it (same config → same experiment). */
export interface ImportedExperiment {
  name: string;
  backend: string;
  config: Record<string, unknown>;
}

export interface ImportedRun {
  /** Index into the file's `experiments`. */
  experiment: number;
  /** 'failed' when the source says the run failed (e.g. no successful prompt); kept, never dropped. */
  status: 'succeeded' | 'failed';
  metrics: Record<string, number | null>;
  /** Validation flags (gate names) that fired for this run. */
  flags: string[];
  /** Why a null metric is null. */
  unmeasured: Record<string, string>;
  startedAt: string | null;
  endedAt: string | null;
  /** Where in the source this run came from, e.g. "repetition 3 of 10" or "line 4". */
  origin: string;
}

export interface ImportedFile {
  path: string;
  sha256: string;
  tool: SourceTool;
  /** The source tool's version or schema version when the file says; null otherwise. */
  version: string | null;
  /** What kind of file it is, e.g. "benchmark_report.json". */
  format: string;
  experiments: ImportedExperiment[];
  runs: ImportedRun[];
  warnings: string[];
  /** Files read only to cross-check this one (e.g. GPU_ENERGY_SUMMARY.json beside a report). */
  companions: Array<{ path: string; sha256: string }>;
}

/** Flag for an energy value that cannot be real (zero or negative): the run is kept and marked. */
export const NONPOSITIVE_ENERGY_FLAG = 'imported_nonpositive_energy';

/** Energy metrics (joules) whose zero or negative value is flagged. */
export function isEnergyMetric(name: string): boolean {
  return /^energy_.*_j$/.test(name) || /^j_per_/.test(name);
}

/** Adds the non-positive energy flag (and a warning per value) where an energy metric is ≤ 0. */
export function flagNonPositiveEnergy(run: ImportedRun, warnings: string[]): void {
  const bad = Object.entries(run.metrics).filter(([k, v]) => isEnergyMetric(k) && typeof v === 'number' && v <= 0);
  if (bad.length === 0) return;
  if (!run.flags.includes(NONPOSITIVE_ENERGY_FLAG)) run.flags.push(NONPOSITIVE_ENERGY_FLAG);
  warnings.push(`${run.origin}: ${bad.map(([k, v]) => `${k} = ${String(v)}`).join(', ')} cannot be a measured energy; kept and flagged ${NONPOSITIVE_ENERGY_FLAG}`);
}

export function sortedMetrics(m: Record<string, number | null>): Record<string, number | null> {
  const out: Record<string, number | null> = {};
  for (const k of Object.keys(m).sort()) out[k] = m[k] ?? null;
  return out;
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}
