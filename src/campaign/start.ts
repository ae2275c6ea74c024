/**
 * Starting a campaign (the use case behind `lem campaign run`): plan its runs (design.ts), preflight every
 * backend it needs where its runs will run, and only then give it an id and record it. A failed
 * preflight throws PreflightError (exit 2) with every problem, and leaves no campaign row.
 */
import { randomBytes } from 'node:crypto';
import { ExperimentConfig } from '../config/experiment.js';
import type { LoadedCampaign } from '../config/load.js';
import { isImportedCampaign } from '../manifest/imports.js';
import type { CampaignRow, Manifest } from '../manifest/manifest.js';
import type { Runtime } from '../runtime/types.js';
import type { Clock } from '../util/clock.js';
import { LemError } from '../util/errors.js';
import { planCampaign } from './design.js';
import { preflight, PreflightError, type PreflightReport } from './preflight.js';

export function newCampaignId(name: string, now: Date): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `${name}-${stamp}-${randomBytes(2).toString('hex')}`;
}

/** Records a planned campaign under `id`; returns how many runs it has. */
export function recordCampaign(manifest: Manifest, c: LoadedCampaign, id: string): number {
  const { runs, design } = planCampaign(c.experiments, c.settings);
  manifest.createCampaign({ id, name: c.name, sourcePath: c.file, settings: c.settings, notes: c.notes, experiments: c.experiments, runs, design });
  return runs.length;
}

export interface StartDeps {
  manifest: Manifest;
  /** Where the runs will run; probed before anything is recorded. */
  runtime: Runtime;
  clock: Clock;
}

export interface StartedCampaign {
  id: string;
  runs: number;
  preflight: PreflightReport;
}

/** Preflight, then id and record. Throws PreflightError (nothing recorded) when a backend cannot run. */
export async function startCampaign(c: LoadedCampaign, deps: StartDeps): Promise<StartedCampaign> {
  const report = await preflight(deps.runtime, c.experiments);
  if (!report.ok) throw new PreflightError(report);
  const id = newCampaignId(c.name, deps.clock.now());
  const runs = recordCampaign(deps.manifest, c, id);
  return { id, runs, preflight: report };
}

/**
 * Before a resume starts anything: the campaign must be one lem can run (not imported), and the
 * backends of its runs still to do must pass preflight (PreflightError otherwise; nothing changes).
 */
export async function preflightResume(manifest: Manifest, c: CampaignRow, runtime: Runtime): Promise<PreflightReport> {
  if (isImportedCampaign(c.settings)) {
    throw new LemError(`campaign ${c.id} holds results imported from other tools (\`lem results import\`); lem cannot run them. Read them with \`lem results show ${c.id}\`, or convert their configs with \`lem config import\` and run that campaign.`);
  }
  const todo = new Set(manifest.runs(c.id, ['pending', 'running', 'failed', 'interrupted']).map((r) => r.experimentId));
  const experiments = manifest
    .experiments(c.id)
    .filter((e) => todo.has(e.id))
    .flatMap((e) => {
      const parsed = ExperimentConfig.safeParse(e.config);
      return parsed.success ? [{ backend: parsed.data.backend, config: parsed.data }] : []; // the runner names an unreadable one
    });
  const report = await preflight(runtime, experiments);
  if (!report.ok) throw new PreflightError(report);
  return report;
}
