/** What every per-format importer returns: other tools' results as lem records (see import.ts). */
import type { ExperimentRecord, RunRecord } from '../aggregate.js';

export interface ImportedRuns {
  experiments: ExperimentRecord[];
  runs: RunRecord[];
  warnings: string[];
  ignoredColumns?: string[];
}
