/**
 * The campaign's plan with its design: the run order from the planner, the engine-configuration
 * groups it was built on, the factors on each side of the split (whole plot: fields that change the
 * engine configuration; sub plot: the rest of what varies) and the engine loads the order implies.
 * Pure: same experiments, settings and seed, same plan and design.
 */
import type { CampaignSettings, Structure } from '../config/campaign.js';
import { engineKey, isEngineField } from '../config/engine-key.js';
import type { ResolvedExperiment } from '../config/load.js';
import type { CampaignDesign } from '../manifest/design.js';
import { countEngineLoads, countWholePlots, engineGroups, planRuns, type PlannedRun } from './planner.js';

const KIND: Record<Structure, CampaignDesign['kind']> = {
  split_plot: 'split_plot',
  shuffled: 'randomised_complete_block',
  interleaved: 'fixed_order_block',
  grouped: 'grouped',
};

/** Leaf values by dotted path (arrays are leaves). */
function flatten(v: unknown, prefix: string, out: Map<string, string>): void {
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
    for (const [k, x] of Object.entries(v)) flatten(x, prefix ? `${prefix}.${k}` : k, out);
  } else if (prefix && prefix !== 'name') out.set(prefix, JSON.stringify(v));
}

/** Dotted paths whose value differs between experiments (a path one experiment lacks counts as varied). */
export function variedFields(experiments: readonly ResolvedExperiment[]): string[] {
  const flat = experiments.map((e) => {
    const m = new Map<string, string>();
    flatten(e.config, '', m);
    return m;
  });
  const paths = new Set(flat.flatMap((m) => [...m.keys()]));
  const varied = [...paths].filter((p) => new Set(flat.map((m) => m.get(p) ?? '\u0000absent')).size > 1);
  return varied.sort();
}

export interface CampaignPlan {
  runs: PlannedRun[];
  design: CampaignDesign;
}

export function planCampaign(
  experiments: readonly ResolvedExperiment[],
  settings: Pick<CampaignSettings, 'cycles' | 'structure' | 'seed' | 'force_cold_start'>,
): CampaignPlan {
  const ids = experiments.map((e) => e.id);
  const keys = experiments.map((e) => engineKey(e.config));
  const runs = planRuns({ experimentIds: ids, engineKeys: keys, cycles: settings.cycles, structure: settings.structure, seed: settings.seed });
  const groups = engineGroups(ids, keys);
  const keyOf = new Map(ids.map((id, i) => [id, keys[i] as string]));
  const varied = variedFields(experiments);
  const isWhole = (f: string): boolean => experiments.some((e) => isEngineField(e.config.backend, f));
  return {
    runs,
    design: {
      structure: settings.structure,
      kind: KIND[settings.structure],
      cycles: settings.cycles,
      whole_plot: { unit: 'engine_configuration_per_cycle', factors: varied.filter(isWhole), groups: groups.length },
      sub_plot: { factors: varied.filter((f) => !isWhole(f)) },
      whole_plots: countWholePlots(runs, keyOf),
      // force_cold_start: a fresh worker and a fresh load for every run, whatever the order.
      engine_loads: settings.force_cold_start ? runs.length : countEngineLoads(runs, keyOf),
      engine_loads_reload_every_run: runs.length,
      groups: groups.map((g) => ({ key: g.key, experiment_ids: g.experimentIds })),
    },
  };
}

/** One line for people: the order, its factors and the loads it implies. */
export function describeDesign(d: CampaignDesign): string {
  const factors = (xs: string[]): string => (xs.length ? xs.join(', ') : 'none varied');
  const loads =
    d.engine_loads === d.engine_loads_reload_every_run
      ? `${d.engine_loads} engine load(s), one per run`
      : `${d.engine_loads} engine load(s) with warm engines (${d.whole_plots} whole plots), against ${d.engine_loads_reload_every_run} reloading every run`;
  if (d.kind !== 'split_plot') return `${d.structure} order; ${loads}`;
  return `split-plot order: whole plots = ${d.whole_plot.groups} engine configuration(s) × ${d.cycles} cycle(s) (whole-plot factors: ${factors(d.whole_plot.factors)}), runs randomised inside each (sub-plot factors: ${factors(d.sub_plot.factors)}); ${loads}`;
}
