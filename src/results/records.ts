/**
 * The bridge from the manifest to the results layer: a campaign's runs and experiments as the
 * plain records aggregation, export and reports work on. Raw result files are read, never written.
 */
import { readFileSync } from 'node:fs';
import { runId, type CampaignDesign, type Manifest } from '../manifest/manifest.js';
import type { Carbon } from '../config/campaign.js';
import type { ExperimentRecord, RunRecord } from './aggregate.js';

export interface CampaignRecords {
  campaignId: string;
  /** The campaign's name (its campaign_name). */
  name: string;
  seed: number;
  /** The campaign's carbon setting, when it has one (emissions are computed late, in carbon.ts). */
  carbon: Carbon | null;
  experiments: ExperimentRecord[];
  runs: RunRecord[];
  /** The design the campaign was planned with (null when planned before designs were recorded). */
  design?: CampaignDesign | null;
}

/** `withResults`: also load each succeeded run's result.json (needed by reports and unified export). */
export function campaignRecords(manifest: Manifest, idOrPrefix: string, opts: { withResults?: boolean } = {}): CampaignRecords {
  const c = manifest.findCampaign(idOrPrefix);
  const experiments: ExperimentRecord[] = manifest.experiments(c.id).map((e) => ({ id: e.id, name: e.name, backend: e.backend, config: e.config }));
  const runs: RunRecord[] = manifest.runs(c.id).map((r) => {
    const rec: RunRecord = {
      runId: runId(c.id, r.position),
      experimentId: r.experimentId,
      cycle: r.cycle,
      status: r.status,
      metrics: r.metrics ?? {},
      flags: r.flags ?? [],
      resultPath: r.resultPath,
    };
    if (opts.withResults && r.resultPath) {
      try {
        rec.result = JSON.parse(readFileSync(r.resultPath, 'utf8')) as unknown;
      } catch {
        // A result file moved or deleted after ingest: the manifest's metrics still stand.
      }
    }
    return rec;
  });
  return { campaignId: c.id, name: c.name, seed: c.settings.seed, carbon: c.settings.carbon ?? null, experiments, runs, design: manifest.design(c.id) };
}
