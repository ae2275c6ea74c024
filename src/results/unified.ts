/**
 * The unified result format (`toUnifiedRun`): one object per run with the blocks `config`, `energy`
 * (Wh: gpu_wh, cpu_wh, ram_wh, total_wh, plus per-phase values), `performance` (throughput,
 * latency, efficiency) and `backend_info`; see `UnifiedRun`. Re-exported by export.ts.
 */
import { parseResult } from '../contract/result-parse.js';
import type { ExperimentRecord, RunRecord } from './aggregate.js';

/** Runs by cycle, experiment id, run id (the order of every export). */
export function sortedRuns(runs: readonly RunRecord[]): RunRecord[] {
  const cmp = (x: string, y: string): number => (x < y ? -1 : x > y ? 1 : 0);
  return runs.slice().sort((a, b) => a.cycle - b.cycle || cmp(a.experimentId, b.experimentId) || cmp(a.runId, b.runId));
}

export interface UnifiedEnergyValues {
  gpu_wh: number | null;
  cpu_wh: number | null;
  ram_wh: number | null;
  total_wh: number | null;
}

export interface UnifiedRun {
  format: 'lem.unified/v1';
  run_id: string;
  experiment_id: string;
  cycle: number;
  status: RunRecord['status'];
  flags: string[];
  config: { experiment_name: string | null; backend: string | null; parameters: unknown };
  /**
   * Watt-hours.
   * - gpu/cpu/ram/total_wh: the measured window (metrics energy_<d>_j; the result file's readings when
   *   a domain's metric is absent), `raw` (energy_<d>_raw_j) and `adjusted` (energy_<d>_adjusted_j,
   *   idle baseline subtracted);
   * - phases: energy_<d>_<phase>_j, and lem's per-pass GPU phase energies energy_prefill_j /
   *   energy_decode_j (→ phases.prefill.gpu_wh / phases.decode.gpu_wh). lem's phase energies are per
   *   pass over the prompt set, while the window covers `repetitions` passes.
   */
  energy: UnifiedEnergyValues & {
    unit: 'Wh';
    raw: UnifiedEnergyValues;
    adjusted: UnifiedEnergyValues;
    phases: Record<string, UnifiedEnergyValues>;
  };
  performance: {
    /** Metrics ending in _per_s (e.g. output_tokens_per_s, tokens_per_s), as named in lem. */
    throughput: Record<string, number | null>;
    /** Metrics starting latency/ttft/itl, in seconds. */
    latency: Record<string, number | null>;
    /** Energy efficiency metrics: j_per_* and *_per_kwh. */
    efficiency: Record<string, number | null>;
  };
  backend_info: { backend: string | null; started_at: string | null; ended_at: string | null; environment: Record<string, unknown> };
  /** Why a metric that is null in this run was not measured (from the result file when loaded). */
  unmeasured: Record<string, string>;
  /** Every other metric, by lem name. */
  other_metrics: Record<string, number | null>;
}

const J_PER_WH = 3600;
const DOMAIN_KEYS: Record<string, keyof UnifiedEnergyValues> = {
  gpu: 'gpu_wh',
  cpu: 'cpu_wh',
  dram: 'ram_wh',
  ram: 'ram_wh',
  total: 'total_wh',
};
const DOMAIN_ENERGY_RE = /^energy_(gpu|cpu|dram|ram|total)(?:_([a-z0-9_]+?))?_j$/;
/** lem worker's per-pass phase energies (GPU): energy_prefill_j, energy_decode_j. */
const GPU_PHASE_ENERGY_RE = /^energy_(prefill|decode|preprocess)_j$/;

function emptyEnergy(): UnifiedEnergyValues {
  return { gpu_wh: null, cpu_wh: null, ram_wh: null, total_wh: null };
}

/** Maps one run to the unified result format. */
export function toUnifiedRun(run: RunRecord, experiment: ExperimentRecord | undefined): UnifiedRun {
  const parsed = run.result !== undefined ? parseResult(run.result) : null;
  const result = parsed && parsed.ok ? parsed.result : null;
  const energy = {
    unit: 'Wh' as const,
    ...emptyEnergy(),
    raw: emptyEnergy(),
    adjusted: emptyEnergy(),
    phases: {} as Record<string, UnifiedEnergyValues>,
  };
  const throughput: Record<string, number | null> = {};
  const latency: Record<string, number | null> = {};
  const efficiency: Record<string, number | null> = {};
  const other: Record<string, number | null> = {};
  for (const name of Object.keys(run.metrics).sort()) {
    const raw = run.metrics[name];
    const v = typeof raw === 'number' && Number.isFinite(raw) ? raw : null;
    const wh = v === null ? null : v / J_PER_WH;
    const dm = DOMAIN_ENERGY_RE.exec(name);
    const gp = GPU_PHASE_ENERGY_RE.exec(name);
    if (dm) {
      const key = DOMAIN_KEYS[dm[1] as string] as keyof UnifiedEnergyValues;
      const sub = dm[2];
      if (sub === undefined) energy[key] = wh;
      else if (sub === 'raw') energy.raw[key] = wh;
      else if (sub === 'adjusted') energy.adjusted[key] = wh;
      else (energy.phases[sub] ??= emptyEnergy())[key] = wh;
    } else if (gp) {
      const p = (energy.phases[gp[1] as string] ??= emptyEnergy());
      if (!(`energy_gpu_${gp[1] as string}_j` in run.metrics)) p.gpu_wh = wh;
    } else if (name.startsWith('j_per_') || name.endsWith('_per_kwh')) efficiency[name] = v;
    else if (name.startsWith('latency') || name.startsWith('ttft') || name.startsWith('itl')) latency[name] = v;
    else if (name.endsWith('_per_s')) throughput[name] = v;
    else other[name] = v;
  }
  // Fall back to the result file's energy readings for domains the metrics do not carry.
  if (result) {
    const fill = (key: keyof UnifiedEnergyValues, joules: number | null, metric: string): void => {
      if (!(metric in run.metrics) && energy[key] === null && joules !== null) energy[key] = joules / J_PER_WH;
    };
    fill('gpu_wh', result.energy.gpu.joules, 'energy_gpu_j');
    fill('cpu_wh', result.energy.cpu.joules, 'energy_cpu_j');
    fill('ram_wh', result.energy.dram.joules, 'energy_dram_j');
  }
  const unmeasured: Record<string, string> = {};
  if (result) {
    for (const name of Object.keys(run.metrics).sort()) {
      const reason = result.unmeasured[name];
      if (run.metrics[name] === null && reason !== undefined) unmeasured[name] = reason;
    }
  }
  return {
    format: 'lem.unified/v1',
    run_id: run.runId,
    experiment_id: run.experimentId,
    cycle: run.cycle,
    status: run.status,
    flags: [...run.flags],
    config: { experiment_name: experiment?.name ?? null, backend: experiment?.backend ?? result?.backend ?? null, parameters: experiment?.config ?? null },
    energy,
    performance: { throughput, latency, efficiency },
    backend_info: {
      backend: result?.backend ?? experiment?.backend ?? null,
      started_at: result?.started_at ?? null,
      ended_at: result?.ended_at ?? null,
      environment: result?.environment ?? {},
    },
    unmeasured,
    other_metrics: other,
  };
}

/** All runs in the unified format, by cycle/experiment/run id. */
export function toUnifiedResults(runs: readonly RunRecord[], experiments: readonly ExperimentRecord[]): UnifiedRun[] {
  const meta = new Map(experiments.map((e) => [e.id, e]));
  return sortedRuns(runs).map((r) => toUnifiedRun(r, meta.get(r.experimentId)));
}

