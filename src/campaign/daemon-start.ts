/**
 * Starting a daemon (the use case behind `lem daemon run | start FILE`): the campaign it continues
 * (the newest unfinished one planned from the same file) or a new one, through the same preflight
 * as `lem campaign run` / `campaign resume`: a failed preflight throws PreflightError (exit 2) with
 * every problem, before any campaign row is written and before any container starts.
 */
import type { CampaignSettings } from '../config/campaign.js';
import type { LoadedCampaign } from '../config/load.js';
import type { Manifest } from '../manifest/manifest.js';
import type { Runtime } from '../runtime/types.js';
import type { Clock } from '../util/clock.js';
import { LemError } from '../util/errors.js';
import { campaignForFile } from './daemon.js';
import type { PreflightReport } from './preflight.js';
import { preflightResume, startCampaign } from './start.js';

export interface DaemonCampaign {
  id: string;
  /** True when this call planned and recorded it; false when it continues an earlier one. */
  created: boolean;
  runs: number;
  preflight: PreflightReport;
}

export interface DaemonStartDeps {
  manifest: Manifest;
  /** Where the runs will run (given the settings of the campaign continued or planned); probed before anything is recorded. */
  runtime: (settings: CampaignSettings) => Promise<Runtime>;
  clock: Clock;
  /** Plan a new campaign even when one from the same file is unfinished. */
  fresh?: boolean;
}

/** The campaign a daemon of `c` runs, preflighted; throws LemError without a schedule, PreflightError (nothing recorded) on a failed preflight. */
export async function daemonCampaign(c: LoadedCampaign, deps: DaemonStartDeps): Promise<DaemonCampaign> {
  if (!c.settings.schedule) {
    throw new LemError(`${c.file}: a daemon needs a schedule: add e.g. \`schedule: {cron: "0 2 * * *"}\` or \`schedule: {at: ["02:00", "14:00"]}\` to the campaign (or run it once with \`lem campaign run\`).`);
  }
  const existing = deps.fresh ? null : campaignForFile(deps.manifest, c.file, c.name);
  if (existing) {
    const preflight = await preflightResume(deps.manifest, existing, await deps.runtime(existing.settings));
    return { id: existing.id, created: false, runs: deps.manifest.runs(existing.id).length, preflight };
  }
  const { id, runs, preflight } = await startCampaign(c, { manifest: deps.manifest, clock: deps.clock, runtime: await deps.runtime(c.settings) });
  return { id, created: true, runs, preflight };
}
