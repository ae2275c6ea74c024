/**
 * The bridge from the manifest to the results layer: a campaign's runs and experiments as the
 * plain records aggregation, export and reports work on. Raw result files are read, never written.
 */
import { readFileSync } from 'node:fs';
import { runId, type CampaignDesign, type Manifest } from '../manifest/manifest.js';
import type { Carbon } from '../config/campaign.js';
import type { ExperimentRecord, GroupBy, RunRecord } from './aggregate.js';

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
  /** `placement.group_by` of the campaign (default gpu_model: runs of different GPU models are never pooled). */
  groupBy?: GroupBy;
}

/** The GPU model a result names (environment.nvml.gpus[].name, or environment.gpus[].name); distinct names joined with ' + '. */
export function gpuModelOfResult(result: unknown): string | null {
  const env = (result as { environment?: { nvml?: { gpus?: unknown } | null; gpus?: unknown } } | null | undefined)?.environment;
  const gpus = Array.isArray(env?.nvml?.gpus) ? env.nvml.gpus : Array.isArray(env?.gpus) ? env.gpus : [];
  const names = [...new Set((gpus as unknown[]).flatMap((g) => {
    const n = (g as { name?: unknown } | null)?.name;
    return typeof n === 'string' && n.trim() ? [n.trim()] : [];
  }))].sort();
  return names.length ? names.join(' + ') : null;
}

/** The GPU model of each run's last placement (`placed` events of a pool of hosts or GPU sets), by position. */
function placedModels(manifest: Manifest, campaignId: string): Map<number, string> {
  const out = new Map<number, string>();
  for (const e of manifest.events(campaignId)) {
    if (e.kind !== 'placed' || e.position === null) continue;
    const model = e.detail['gpu_model'];
    if (typeof model === 'string' && model) out.set(e.position, model);
    else out.delete(e.position);
  }
  return out;
}

function readResult(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as unknown;
  } catch {
    return undefined; // a result file moved or deleted after ingest: the manifest's metrics still stand
  }
}

/** `withResults`: also load each succeeded run's result.json (needed by reports and unified export). */
export function campaignRecords(manifest: Manifest, idOrPrefix: string, opts: { withResults?: boolean } = {}): CampaignRecords {
  const c = manifest.findCampaign(idOrPrefix);
  const experiments: ExperimentRecord[] = manifest.experiments(c.id).map((e) => ({ id: e.id, name: e.name, backend: e.backend, config: e.config }));
  const models = placedModels(manifest, c.id);
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
    const placed = models.get(r.position);
    if (r.resultPath && (opts.withResults || placed === undefined)) {
      const result = readResult(r.resultPath);
      if (opts.withResults && result !== undefined) rec.result = result;
      rec.gpuModel = placed ?? gpuModelOfResult(result);
    } else rec.gpuModel = placed ?? null;
    return rec;
  });
  return { campaignId: c.id, name: c.name, seed: c.settings.seed, carbon: c.settings.carbon ?? null, experiments, runs, design: manifest.design(c.id), groupBy: c.settings.placement?.group_by ?? 'gpu_model' };
}
