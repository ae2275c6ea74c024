/** What the campaign runner (runner.ts) takes and reports: its deps, progress events and outcome, and where a run's files go. Re-exported by runner.ts. */
import { join } from 'node:path';
import type { Manifest } from '../manifest/manifest.js';
import type { Runtime } from '../runtime/types.js';
import type { Clock } from '../util/clock.js';
import type { GapRecord } from './gap.js';
import type { FailureKind } from './retry.js';

export interface RunEvent {
  position: number;
  experimentId: string;
  experimentName: string;
  cycle: number;
  attempt: number;
}

export interface Progress {
  done: number;
  failed: number;
  remaining: number;
  total: number;
  /** Estimated seconds left, from the mean time per run so far (null before the first). */
  etaS: number | null;
}

/** Where the runner reports what it does; the CLI prints it, tests record it. */
export interface ProgressSink {
  note(message: string): void;
  runStarted(e: RunEvent, p: Progress): void;
  runEnded(
    e: RunEvent & {
      status: 'succeeded' | 'failed' | 'interrupted';
      seconds: number;
      error: string | null;
      willRetry: boolean;
      /** Seconds the worker waited for another measurement to release the device (from its result); null when it did not. */
      deviceWaitS?: number | null;
      /** The failure's kind (retry.ts) when it failed or was interrupted. */
      failureKind?: FailureKind | null;
    },
    p: Progress,
  ): void;
  waiting(seconds: number): void;
  /** A thermal gap ended (optional: how long it waited and why it stopped waiting). */
  gapEnded?(gap: GapRecord): void;
}

export interface ExecuteOptions {
  /** Only the runs of these cycles (a scheduled fire); default every cycle. */
  cycles?: readonly number[];
}

export interface RunnerDeps {
  manifest: Manifest;
  runtime: Runtime;
  clock: Clock;
  /** Root for run directories (config.json, worker.log, result.json). */
  workspaceRoot: string;
  progress: ProgressSink;
}

export interface CampaignOutcome {
  status: 'completed' | 'failed' | 'interrupted';
  succeeded: number;
  failed: number;
  interrupted: number;
  pending: number;
}

/** One mode for every run file (config.json, worker.log, result.json): owner-writable, world-readable. */
export const RUN_FILE_MODE = 0o644;

export function runDir(workspaceRoot: string, campaignId: string, run: { experimentId: string; cycle: number }, attempt: number): string {
  return join(workspaceRoot, 'runs', campaignId, run.experimentId, `c${run.cycle}-a${attempt}`);
}
