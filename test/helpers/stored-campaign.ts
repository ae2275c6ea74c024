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
  /** Per cycle: the fake GPU model of its `placed` event (as a pool of hosts records it); none when absent. */
  placedGpuModels?: readonly (string | null)[];
  /** Per cycle: the fake GPU name written into the result's environment.nvml.gpus (no placement event). */
  resultGpuNames?: readonly (string | null)[];
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
      for (const [i, metrics] of e.runs.entries()) {
        const dir = join(stateDir, 'runs', campaignId, e.id, `c${pos}`);
        mkdirSync(dir, { recursive: true });
        const resultPath = join(dir, 'result.json');
        const gpuName = e.resultGpuNames?.[i];
        const environment = gpuName ? { nvml: { gpus: [{ uuid: `GPU-fake-${i}`, name: gpuName }] } } : {};
        writeFileSync(resultPath, JSON.stringify({ stored_by_test: true, metrics, environment }));
        const model = e.placedGpuModels?.[i];
        if (model) m.note(campaignId, pos, 'placed', { attempt: 1, host: `fake-${model}`, gpu_set: '0', gpus: ['0'], gpu_model: model });
        m.markRunning(campaignId, pos, 1);
        m.markSucceeded(campaignId, pos, 1, { resultPath, metrics, flags: [], exitCode: 0 });
        pos++;
      }
    }
  } finally {
    m.close();
  }
}
