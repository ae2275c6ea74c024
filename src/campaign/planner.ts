/**
 * The planner: a pure function from (experiments, cycles, structure, seed) to the ordered runs.
 * Same inputs, same order — a campaign's order is reproducible from its seed.
 */
import type { Structure } from '../config/campaign.js';
import type { PlannedRun } from '../manifest/manifest.js';
import { createRng, shuffled } from '../util/random.js';

export type { PlannedRun } from '../manifest/manifest.js';

export interface PlanInput {
  /** Experiment ids in declaration order. */
  experimentIds: readonly string[];
  cycles: number;
  structure: Structure;
  seed: number;
}

/**
 * interleaved: every experiment once per cycle, in declaration order.
 * shuffled: every experiment once per cycle, a fresh seeded permutation each cycle.
 * grouped: all cycles of one experiment back to back, experiments in declaration order.
 */
export function planRuns({ experimentIds, cycles, structure, seed }: PlanInput): PlannedRun[] {
  const runs: PlannedRun[] = [];
  const push = (experimentId: string, cycle: number): void => {
    runs.push({ position: runs.length, experimentId, cycle });
  };
  if (structure === 'grouped') {
    for (const id of experimentIds) for (let c = 1; c <= cycles; c++) push(id, c);
    return runs;
  }
  const rng = createRng(`lem-plan:${seed}`);
  for (let c = 1; c <= cycles; c++) {
    const order = structure === 'shuffled' ? shuffled(experimentIds, rng) : experimentIds;
    for (const id of order) push(id, c);
  }
  return runs;
}
