/** The manifest's rows (campaign, experiment, run) as lem reads them, their SQLite shapes and mappers, and what a new campaign records. Re-exported by manifest.ts. */
import type { CampaignSettings } from '../config/campaign.js';
import type { ResolvedExperiment } from '../config/load.js';
import type { CampaignDesign } from './design.js';
import type { RunStatus } from './transitions.js';

export type CampaignStatus = 'planned' | 'running' | 'completed' | 'failed' | 'interrupted';

export interface CampaignRow {
  id: string;
  name: string;
  sourcePath: string;
  settings: CampaignSettings;
  notes: string[];
  status: CampaignStatus;
  createdAt: string;
  updatedAt: string;
  ownerPid: number | null;
  ownerHost: string | null;
}

export interface ExperimentRow {
  id: string;
  position: number;
  name: string;
  backend: string;
  config: Record<string, unknown>;
}

export interface RunRow {
  campaignId: string;
  position: number;
  experimentId: string;
  cycle: number;
  status: RunStatus;
  attempt: number;
  handle: string | null;
  startedAt: string | null;
  endedAt: string | null;
  exitCode: number | null;
  error: string | null;
  resultPath: string | null;
  metrics: Record<string, number | null> | null;
  /** Validation gates that fired (kept and marked, never dropped); null until succeeded. */
  flags: string[] | null;
  /** SHA-256 (hex) and size of result.json as ingested; null for runs recorded before checksums. */
  resultSha256: string | null;
  resultBytes: number | null;
  /** The current attempt's token (in its worker's command line), recorded before the worker starts. */
  attemptToken: string | null;
  /** Why the last attempt failed or was interrupted (engine_error, out_of_memory, timeout, …); null otherwise. */
  failureKind: string | null;
}

/** A run's id everywhere outside the manifest (worker config, result files, exports). */
export function runId(campaignId: string, position: number): string {
  return `${campaignId}:${position}`;
}

export type StatusCounts = Record<RunStatus, number>;

export interface RawCampaign {
  id: string;
  name: string;
  source_path: string;
  settings_json: string;
  notes_json: string;
  status: CampaignStatus;
  created_at: string;
  updated_at: string;
  owner_pid: number | null;
  owner_host: string | null;
}
export interface RawRun {
  campaign_id: string;
  position: number;
  experiment_id: string;
  cycle: number;
  status: RunStatus;
  attempt: number;
  handle: string | null;
  started_at: string | null;
  ended_at: string | null;
  exit_code: number | null;
  error: string | null;
  result_path: string | null;
  metrics_json: string | null;
  flags_json: string | null;
  result_sha256?: string | null;
  result_bytes?: number | null;
  attempt_token: string | null;
  failure_kind?: string | null;
}

export const toCampaign = (r: RawCampaign): CampaignRow => ({
  id: r.id,
  name: r.name,
  sourcePath: r.source_path,
  settings: JSON.parse(r.settings_json) as CampaignSettings,
  notes: JSON.parse(r.notes_json) as string[],
  status: r.status,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
  ownerPid: r.owner_pid,
  ownerHost: r.owner_host,
});
export const toRun = (r: RawRun): RunRow => ({
  campaignId: r.campaign_id,
  position: r.position,
  experimentId: r.experiment_id,
  cycle: r.cycle,
  status: r.status,
  attempt: r.attempt,
  handle: r.handle,
  startedAt: r.started_at,
  endedAt: r.ended_at,
  exitCode: r.exit_code,
  error: r.error,
  resultPath: r.result_path,
  metrics: r.metrics_json === null ? null : (JSON.parse(r.metrics_json) as Record<string, number | null>),
  flags: r.flags_json === null ? null : (JSON.parse(r.flags_json) as string[]),
  resultSha256: r.result_sha256 ?? null,
  resultBytes: r.result_bytes ?? null,
  attemptToken: r.attempt_token,
  failureKind: r.failure_kind ?? null,
});


/** One run of a campaign's plan, as the planner orders it and the manifest records it. */
export interface PlannedRun {
  /** 0-based position in the campaign's run order. */
  position: number;
  experimentId: string;
  /** 1-based cycle number. */
  cycle: number;
}

export interface NewCampaign {
  id: string;
  name: string;
  sourcePath: string;
  settings: CampaignSettings;
  notes: string[];
  experiments: readonly ResolvedExperiment[];
  runs: readonly PlannedRun[];
  /** The design the plan follows (whole-plot and sub-plot factors, engine loads); recorded with it. */
  design?: CampaignDesign;
}
