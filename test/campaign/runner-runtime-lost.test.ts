/**
 * When the runtime cannot go on (dispatch rejects: its service containers keep disappearing), the
 * runner marks that run failed with the reason, stops the campaign (no further runs burned),
 * still shuts the runtime down with the campaign id, and a resume continues. Scripted runtime (a
 * test double of the runtime seam, not of Docker), real manifest; run files get one mode.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { planRuns } from '../../src/campaign/planner.js';
import { executeCampaign, RUN_FILE_MODE, runDir, type ProgressSink } from '../../src/campaign/runner.js';
import type { CampaignSettings } from '../../src/config/campaign.js';
import { ExperimentConfig } from '../../src/config/experiment.js';
import { Manifest } from '../../src/manifest/manifest.js';
import { systemClock } from '../../src/util/clock.js';
import { LemError } from '../../src/util/errors.js';
import { tempDir } from '../helpers/cli.js';
import { scriptedRuntime } from '../helpers/scripted-runtime.js';

const quiet: ProgressSink = { note() {}, runStarted() {}, runEnded() {}, waiting() {} };
const manifests: Manifest[] = [];
afterEach(() => {
  for (const m of manifests.splice(0)) m.close();
});

describe('runner: a runtime that cannot go on', () => {
  it('fails the run it was dispatching, stops, shuts down with the campaign id; resume finishes', async () => {
    const root = tempDir();
    const manifest = Manifest.open(join(root, 'lem.db'), systemClock);
    manifests.push(manifest);
    const settings: CampaignSettings = { cycles: 4, structure: 'interleaved', seed: 1, thermal_gap: 0, runtime: 'docker', force_cold_start: false, retries: 1, keep_services: false };
    const config = ExperimentConfig.parse({ backend: 'calibration' });
    manifest.createCampaign({ id: 'camp', name: 'camp', sourcePath: 'x.yaml', settings, notes: [], experiments: [{ id: 'e0', name: 'e0', backend: 'calibration', config }], runs: planRuns({ experimentIds: ['e0'], cycles: 4, structure: 'interleaved', seed: 1 }) });

    const rt = scriptedRuntime(() => 'ok');
    const ok = rt.dispatch.bind(rt);
    let calls = 0;
    const shutdowns: { keepServices: boolean; campaignId?: string }[] = [];
    rt.dispatch = async (spec, signal, onStarted) => {
      calls++;
      if (calls === 2) throw new LemError('the cpu service container was removed 4 times during this campaign', 1);
      return ok(spec, signal, onStarted);
    };
    rt.shutdown = async (o) => {
      shutdowns.push(o);
    };
    await expect(executeCampaign('camp', { manifest, runtime: rt, clock: systemClock, workspaceRoot: root, progress: quiet }, new AbortController().signal)).rejects.toThrow(/removed 4 times/);
    expect(calls).toBe(2); // no retry, no further run burned
    const runs = manifest.runs('camp');
    expect(runs.map((r) => r.status)).toEqual(['succeeded', 'failed', 'pending', 'pending']);
    expect(runs[1]?.error).toMatch(/removed 4 times/);
    expect(shutdowns).toEqual([{ keepServices: false, campaignId: 'camp' }]);
    expect(manifest.findCampaign('camp').status).toBe('failed');
    // config.json (lem) and result.json (the worker, here the double) of a run: one mode.
    const dir = runDir(root, 'camp', runs[0] ?? { experimentId: 'e0', cycle: 1 }, 1);
    expect(statSync(join(dir, 'config.json')).mode & 0o777).toBe(RUN_FILE_MODE);

    const resumed = await executeCampaign('camp', { manifest, runtime: scriptedRuntime(() => 'ok'), clock: systemClock, workspaceRoot: root, progress: quiet }, new AbortController().signal);
    expect(resumed.status).toBe('completed');
  });
});
