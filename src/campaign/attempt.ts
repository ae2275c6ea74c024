/**
 * One attempt of one run (runner.ts calls it): its run directory and config, the dispatch through the
 * Runtime, and what it left (result ingested and window-checked, or a typed failure with its log's
 * last line), recorded in the manifest.
 */
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runId, type Manifest, type RunRow } from '../manifest/manifest.js';
import { ingestResultFile } from '../contract/ingest.js';
import { attemptToken, type DispatchOutcome, type GpuSlot, type RunSpec } from '../runtime/types.js';
import { DiskFullError } from '../util/errors.js';
import { freeBytes, minFreeBytes } from '../util/disk.js';
import { ExperimentConfig } from '../config/experiment.js';
import { checkWindow } from './windows.js';
import { classifyFailure, type FailureKind } from './retry.js';
import { RUN_FILE_MODE, runDir, type RunnerDeps } from './run-types.js';

/** Stops before a run when the filesystem of the run directories has less than the minimum free. */
function ensureSpace(root: string): void {
  const min = minFreeBytes();
  const free = min > 0 ? freeBytes(root) : null;
  if (free !== null && free < min) throw new DiskFullError(root, `${free} bytes free, less than the ${min} a run needs`);
}

export interface AttemptResult {
  status: 'succeeded' | 'failed' | 'interrupted';
  error: string | null;
  deviceWaitS?: number | null;
  kind?: FailureKind;
  hostLost?: boolean;
}

export async function executeAttempt(
  campaignId: string,
  run: RunRow,
  config: ExperimentConfig,
  attempt: number,
  deps: RunnerDeps,
  signal: AbortSignal,
  slot?: GpuSlot,
): Promise<AttemptResult> {
  const { manifest, runtime } = deps;
  const dir = runDir(deps.workspaceRoot, campaignId, run, attempt);
  ensureSpace(deps.workspaceRoot);
  mkdirSync(dir, { recursive: true });
  const id = runId(campaignId, run.position);
  const token = attemptToken(campaignId, run.position, attempt);
  const spec: RunSpec = {
    runId: id,
    experimentId: run.experimentId,
    cycle: run.cycle,
    attempt,
    backend: config.backend,
    configPath: join(dir, 'config.json'),
    outDir: dir,
    logPath: join(dir, 'worker.log'),
    timeoutS: config.measurement.timeout_s ?? null,
    attemptToken: token,
    ...(slot ? { slot } : {}),
  };
  writeFileSync(
    spec.configPath,
    JSON.stringify({ run: { run_id: id, experiment_id: run.experimentId, cycle: run.cycle, attempt }, experiment: config }, null, 2),
  );
  chmodSync(spec.configPath, RUN_FILE_MODE);
  // The token is in the manifest before the worker exists: a resume finds the worker by it even
  // when this process dies before the handle is recorded.
  manifest.markRunning(campaignId, run.position, attempt, token);
  if (slot) manifest.note(campaignId, run.position, 'placed', { attempt, host: slot.host, gpu_set: slot.key, gpus: slot.gpus, gpu_model: slot.model });
  // Recording the handle runs in the runtime's callback: a failure there (a full disk) must not be
  // an uncaught exception; it stops this worker and is thrown from here, where it is handled.
  const local = new AbortController();
  const forward = (): void => local.abort();
  if (signal.aborted) local.abort();
  else signal.addEventListener('abort', forward, { once: true });
  let handleError: unknown = null;
  let outcome: DispatchOutcome;
  try {
    outcome = await runtime.dispatch(spec, local.signal, (handle) => {
      try {
        manifest.setHandle(campaignId, run.position, attempt, handle);
      } catch (e) {
        handleError ??= e;
        local.abort();
      }
    });
  } catch (e) {
    // The runtime cannot go on (its services keep disappearing): this run failed, the campaign stops.
    manifest.markEnded(campaignId, run.position, attempt, { status: 'failed', exitCode: null, error: e instanceof Error ? e.message : String(e), failureKind: 'container_gone' });
    throw e;
  } finally {
    signal.removeEventListener('abort', forward);
  }
  if (handleError !== null) throw handleError;
  if (outcome.hostLost) {
    const error = outcome.failureReason ?? 'the run\'s host stopped answering';
    manifest.markEnded(campaignId, run.position, attempt, { status: 'interrupted', exitCode: outcome.exitCode, error, failureKind: 'host_lost' });
    return { status: 'interrupted', error, hostLost: true, kind: 'host_lost' };
  }

  if (outcome.failureReason === 'interrupted' || (signal.aborted && outcome.exitCode !== 0)) {
    const error = 'interrupted by the user (Ctrl-C or SIGTERM)';
    manifest.markEnded(campaignId, run.position, attempt, { status: 'interrupted', exitCode: outcome.exitCode, error, failureKind: 'interrupted' });
    return { status: 'interrupted', error, kind: 'interrupted' };
  }
  if (outcome.exitCode === 0 && outcome.failureReason === null) {
    const ingested = ingestResultFile(join(dir, 'result.json'), { runId: id, experimentId: run.experimentId, cycle: run.cycle, attempt });
    if (ingested.ok) {
      const flags = checkWindow(manifest, campaignId, run.position, attempt, ingested.result, ingested.flags);
      const deviceWaitS = noteDeviceWait(manifest, campaignId, run.position, attempt, ingested.result.device_lock);
      manifest.markSucceeded(campaignId, run.position, attempt, {
        resultPath: join(dir, 'result.json'),
        metrics: ingested.result.metrics,
        flags,
        exitCode: 0,
        sha256: ingested.sha256,
        bytes: ingested.bytes,
      });
      return { status: 'succeeded', error: null, deviceWaitS };
    }
    manifest.markEnded(campaignId, run.position, attempt, { status: 'failed', exitCode: 0, error: ingested.reason, failureKind: 'bad_result' });
    return { status: 'failed', error: ingested.reason, kind: 'bad_result' };
  }
  const failure = classifyFailure(outcome, dir);
  const error =
    outcome.failureReason ?? `the worker exited with code ${outcome.exitCode}${failure.message ? `: ${failure.message.slice(0, 500)}` : lastLogLine(spec.logPath)}`;
  // A worker that failed because the disk filled up is interrupted, not failed: it is re-run on resume.
  const min = minFreeBytes();
  const free = min > 0 ? freeBytes(dir) : null;
  if (free !== null && free < min) {
    manifest.markEnded(campaignId, run.position, attempt, { status: 'interrupted', exitCode: outcome.exitCode, error: `disk full at ${dir}: ${error}` });
    throw new DiskFullError(dir, `${free} bytes free after the run failed: ${error}`);
  }
  manifest.markEnded(campaignId, run.position, attempt, { status: 'failed', exitCode: outcome.exitCode, error, failureKind: failure.kind });
  return { status: 'failed', error, kind: failure.kind };
}

/** A run that waited for another measurement to release its device: an event, and the wait for the progress line. */
export function noteDeviceWait(
  manifest: Manifest,
  campaignId: string,
  position: number,
  attempt: number,
  lock: { waited_s: number; waited_for: Record<string, unknown> | null; devices: string[] } | null | undefined,
): number | null {
  if (!lock || !(lock.waited_s > 0)) return null;
  manifest.note(campaignId, position, 'device_lock_waited', { attempt, waited_s: lock.waited_s, waited_for: lock.waited_for, devices: lock.devices });
  return lock.waited_s;
}

function lastLogLine(logPath: string): string {
  try {
    const lines = readFileSync(logPath, 'utf8').trim().split('\n');
    const last = lines[lines.length - 1]?.trim();
    return last ? `: ${last.slice(0, 500)}` : '';
  } catch {
    return '';
  }
}
