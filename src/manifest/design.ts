/**
 * The experimental design of a campaign as planned: which factors are whole-plot factors (they
 * change the engine configuration, so a model load) and which are sub-plot factors (randomised
 * inside a loaded engine), how many engine loads the order implies, and the groups. Written once
 * with the plan; read by status and by the results layer, which notes it beside the statistics.
 */
import type { Db } from './db.js';

export interface CampaignDesign {
  /** The run order (the campaign's structure). */
  structure: string;
  /** split_plot; randomised_complete_block (shuffled); fixed_order_block (interleaved); grouped. */
  kind: 'split_plot' | 'randomised_complete_block' | 'fixed_order_block' | 'grouped';
  cycles: number;
  whole_plot: {
    /** The whole-plot unit: the runs of one engine configuration inside one cycle. */
    unit: 'engine_configuration_per_cycle';
    /** Varied fields that change the engine configuration (a model load). */
    factors: string[];
    /** Distinct engine configurations. */
    groups: number;
  };
  /** Varied fields randomised inside a loaded engine (batch size, decoder, prompts, …). */
  sub_plot: { factors: string[] };
  /** Whole plots in the order: maximal runs of one engine configuration inside one cycle (split_plot: groups × cycles). */
  whole_plots: number;
  /**
   * Engine loads the order implies with one warm engine kept until a run needs another (at most
   * whole_plots: a cycle that starts with the engine the previous cycle ended on reuses it);
   * with force_cold_start, one per run.
   */
  engine_loads: number;
  /** Engine loads if every run loads its model afresh (= runs). */
  engine_loads_reload_every_run: number;
  groups: { key: string; experiment_ids: string[] }[];
}

export function insertDesign(db: Db, campaignId: string, design: CampaignDesign): void {
  db.prepare('INSERT INTO designs (campaign_id, design_json) VALUES (?, ?)').run(campaignId, JSON.stringify(design));
}

/** The campaign's design record; null for a campaign planned before designs were recorded. */
export function designOf(db: Db, campaignId: string): CampaignDesign | null {
  const r = db.prepare<[string], { design_json: string }>('SELECT design_json FROM designs WHERE campaign_id = ?').get(campaignId);
  return r ? (JSON.parse(r.design_json) as CampaignDesign) : null;
}
