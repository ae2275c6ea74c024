/**
 * Imported files → lem experiments and runs: experiments are keyed by the source tool and the
 * imported config (the same config in several files is one experiment with several runs), runs
 * are numbered as cycles 1…n per experiment in the order read.
 */
import { experimentId } from '../../config/identity.js';
import type { ExperimentRecord, RunRecord } from '../aggregate.js';
import type { ImportedFile, ImportedRun } from './types.js';

export interface AssembledRun extends ImportedRun {
  experimentId: string;
  cycle: number;
  file: ImportedFile;
}

export interface Assembled {
  experiments: Array<{ id: string; name: string; backend: string; config: Record<string, unknown> }>;
  runs: AssembledRun[];
}

export function assemble(files: readonly ImportedFile[]): Assembled {
  const experiments: Assembled['experiments'] = [];
  const cycles = new Map<string, number>();
  const runs: AssembledRun[] = [];
  for (const f of files) {
    const ids = f.experiments.map((e) => {
      const id = experimentId({ source_tool: f.tool, config: e.config });
      if (!cycles.has(id)) {
        cycles.set(id, 0);
        experiments.push({ id, name: e.name, backend: e.backend, config: { ...e.config, source_tool: f.tool } });
      }
      return id;
    });
    for (const r of f.runs) {
      const id = ids[r.experiment] as string;
      const cycle = (cycles.get(id) ?? 0) + 1;
      cycles.set(id, cycle);
      runs.push({ ...r, experimentId: id, cycle, file: f });
    }
  }
  // Two configs under one name (e.g. the same model, another batch size): names stay distinguishable.
  const byName = new Map<string, number>();
  for (const e of experiments) byName.set(e.name, (byName.get(e.name) ?? 0) + 1);
  for (const e of experiments) if ((byName.get(e.name) ?? 0) > 1) e.name = `${e.name} #${e.id.slice(0, 6)}`;
  return { experiments, runs };
}

/** The same as plain records (no manifest), for comparing files directly: run ids are `import:<n>`. */
export function assembledRecords(a: Assembled): { experiments: ExperimentRecord[]; runs: RunRecord[] } {
  return {
    experiments: a.experiments.map((e) => ({ ...e })),
    runs: a.runs.map((r, i) => ({
      runId: `import:${i}`,
      experimentId: r.experimentId,
      cycle: r.cycle,
      status: r.status,
      metrics: r.metrics,
      flags: [...r.flags],
      resultPath: r.file.path,
    })),
  };
}
