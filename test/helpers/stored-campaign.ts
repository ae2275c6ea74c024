/**
 * Stored results built for a test: a campaign written into a real SQLite manifest (the same calls the
 * runner makes: create, mark running, mark succeeded with the metrics), so the real CLI reads it as it
 * reads a measured campaign. Used where a test needs chosen values (validate's within / outside /
 * inconclusive verdicts; carbon; the ClickHouse push), which a real workload cannot give on demand.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CampaignSettings } from '../../src/config/campaign.js';
import { ExperimentConfig } from '../../src/config/experiment.js';
import { Manifest } from '../../src/manifest/manifest.js';
import { systemClock } from '../../src/util/clock.js';

export interface StoredExperiment {
  id: string;
  name: string;
  /** One metrics record per cycle (cycle = index + 1). */
  runs: Record<string, number | null>[];
}

export function storeCampaign(
  stateDir: string,
  campaignId: string,
  experiments: readonly StoredExperiment[],
  settings: Partial<CampaignSettings> & Record<string, unknown> = {},
): void {
  mkdirSync(stateDir, { recursive: true });
  const m = Manifest.open(join(stateDir, 'lem.db'), systemClock);
  try {
    const cycles = Math.max(...experiments.map((e) => e.runs.length));
    const s = { cycles, structure: 'interleaved', seed: 7, thermal_gap: 0, runtime: 'local', force_cold_start: false, retries: 0, keep_services: false, ...settings } as CampaignSettings;
    const exps = experiments.map((e) => ({ id: e.id, name: e.name, backend: 'calibration' as const, config: ExperimentConfig.parse({ backend: 'calibration' }) }));
    const runs: { position: number; experimentId: string; cycle: number }[] = [];
    for (const e of experiments) e.runs.forEach((_, i) => runs.push({ position: runs.length, experimentId: e.id, cycle: i + 1 }));
    m.createCampaign({ id: campaignId, name: campaignId, sourcePath: 'stored-by-test.yaml', settings: s, notes: [], experiments: exps, runs });
    let pos = 0;
    for (const e of experiments) {
      for (const metrics of e.runs) {
        const dir = join(stateDir, 'runs', campaignId, e.id, `c${pos}`);
        mkdirSync(dir, { recursive: true });
        const resultPath = join(dir, 'result.json');
        writeFileSync(resultPath, JSON.stringify({ stored_by_test: true, metrics }));
        m.markRunning(campaignId, pos, 1);
        m.markSucceeded(campaignId, pos, 1, { resultPath, metrics, flags: [], exitCode: 0 });
        pos++;
      }
    }
  } finally {
    m.close();
  }
}
