/**
 * The planner: a pure function from (experiments, cycles, structure, seed) to the ordered runs.
 * Same inputs, same order — a campaign's order is reproducible from its seed.
 */
import type { Structure } from '../config/campaign.js';
import type { PlannedRun } from '../manifest/manifest.js';
import { createRng, shuffled, type Rng } from '../util/random.js';

export type { PlannedRun } from '../manifest/manifest.js';

export interface PlanInput {
  /** Experiment ids in declaration order. */
  experimentIds: readonly string[];
  cycles: number;
  structure: Structure;
  seed: number;
  /**
   * The engine-configuration key of each experiment (same index as experimentIds; see
   * config/engine-key.ts). split_plot groups by it; without it every experiment is its own group.
   */
  engineKeys?: readonly string[];
}

/** Experiment ids grouped by engine key, groups in the order their first experiment is declared. */
export function engineGroups(experimentIds: readonly string[], engineKeys?: readonly string[]): { key: string; experimentIds: string[] }[] {
  if (engineKeys && engineKeys.length !== experimentIds.length) {
    throw new Error(`planner: ${engineKeys.length} engine keys for ${experimentIds.length} experiments`);
  }
  const groups = new Map<string, string[]>();
  experimentIds.forEach((id, i) => {
    const key = engineKeys?.[i] ?? id;
    const g = groups.get(key);
    if (g) g.push(id);
    else groups.set(key, [id]);
  });
  return [...groups].map(([key, ids]) => ({ key, experimentIds: ids }));
}

/** One cycle of a split-plot order: the groups in a random order, each group's runs in a random order. */
function splitPlotCycle(groups: readonly { experimentIds: readonly string[] }[], rng: Rng): string[] {
  return shuffled(groups, rng).flatMap((g) => shuffled(g.experimentIds, rng));
}

/**
 * interleaved: every experiment once per cycle, in declaration order.
 * shuffled: every experiment once per cycle, a fresh seeded permutation each cycle.
 * grouped: all cycles of one experiment back to back, experiments in declaration order.
 * split_plot: every experiment once per cycle; per cycle the engine-configuration groups (whole
 *   plots) come in a fresh seeded order and the runs inside each group (sub-plots) in a fresh seeded
 *   order, so each engine is loaded once per cycle when engines are kept warm.
 */
export function planRuns({ experimentIds, cycles, structure, seed, engineKeys }: PlanInput): PlannedRun[] {
  const runs: PlannedRun[] = [];
  const push = (experimentId: string, cycle: number): void => {
    runs.push({ position: runs.length, experimentId, cycle });
  };
  if (structure === 'grouped') {
    for (const id of experimentIds) for (let c = 1; c <= cycles; c++) push(id, c);
    return runs;
  }
  if (structure === 'split_plot') {
    const groups = engineGroups(experimentIds, engineKeys);
    const rng = createRng(`lem-split-plot:${seed}`);
    for (let c = 1; c <= cycles; c++) for (const id of splitPlotCycle(groups, rng)) push(id, c);
    return runs;
  }
  const rng = createRng(`lem-plan:${seed}`);
  for (let c = 1; c <= cycles; c++) {
    const order = structure === 'shuffled' ? shuffled(experimentIds, rng) : experimentIds;
    for (const id of order) push(id, c);
  }
  return runs;
}

/**
 * Engine loads an order implies when the one warm engine is kept until a run needs another:
 * a load at the first run and at every change of engine key from one run to the next.
 */
export function countEngineLoads(order: readonly { experimentId: string }[], keyOf: ReadonlyMap<string, string>): number {
  let loads = 0;
  let last: string | undefined;
  for (const r of order) {
    const k = keyOf.get(r.experimentId) ?? r.experimentId;
    if (k !== last) loads++;
    last = k;
  }
  return loads;
}

/** Whole plots of an order: maximal stretches of one engine key inside one cycle. */
export function countWholePlots(order: readonly { experimentId: string; cycle: number }[], keyOf: ReadonlyMap<string, string>): number {
  let plots = 0;
  let last: string | undefined;
  for (const r of order) {
    const k = `${r.cycle}\u0000${keyOf.get(r.experimentId) ?? r.experimentId}`;
    if (k !== last) plots++;
    last = k;
  }
  return plots;
}
