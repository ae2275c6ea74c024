/**
 * The campaign runner: takes a planned campaign from the manifest and executes its runs in order
 * through a Runtime, with thermal gaps, retries, resume after any crash, and clean interruption.
 * Side effects come in through RunnerDeps, so this file is testable with fakes.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runId, type Manifest, type RunRow } from '../manifest/manifest.js';
import { ingestResultFile } from '../contract/ingest.js';
import { attemptToken, type DispatchOutcome, type GpuSlot, type Runtime, type RunSpec, type ThermalReading } from '../runtime/types.js';
import { runOnSlots, slotsOfPlan, type SlotVerdict } from './queues.js';
import { hubNeeds } from './hub-needs.js';
import type { Clock } from '../util/clock.js';
import { DiskFullError, isDiskFull, LemError } from '../util/errors.js';
import { freeBytes, minFreeBytes, reserveSpace } from '../util/disk.js';
import { ExperimentConfig } from '../config/experiment.js';
import { checkWindow, recordOrphanWindows } from './windows.js';
import { nominalGapS, parseThermal, waitThermalGap, type GapRecord } from './gap.js';
import { BackendSkips, classifyFailure, retryDecision, type FailureKind } from './retry.js';

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

/**
 * Runs (or resumes) a campaign until every run succeeded, failed after its retries, or the signal
 * aborts. Safe to call again after any crash: succeeded runs are never re-run or re-recorded.
 */
export async function executeCampaign(campaignId: string, deps: RunnerDeps, signal: AbortSignal, opts: ExecuteOptions = {}): Promise<CampaignOutcome> {
  const { manifest, runtime, clock, progress } = deps;
  const campaign = manifest.findCampaign(campaignId);
  const settings = campaign.settings;
  const experiments = new Map(manifest.experiments(campaign.id).map((e) => [e.id, { id: e.id, name: e.name, config: storedConfig(campaign.id, e.id, e.config) }]));
  manifest.claim(campaign.id);
  for (const other of manifest.liveCampaigns(campaign.id)) {
    progress.note(
      `campaign ${other.id} (pid ${other.ownerPid ?? '?'} on ${other.ownerHost ?? 'another host'}) is running; runs will wait for the device lock (one measurement per device at a time)`,
    );
  }
  const releaseReserve = reserveSpace(join(deps.workspaceRoot, 'runs', campaign.id));

  let interrupted = false;
  let status: CampaignOutcome['status'] = 'completed';
  try {
    const recovered = await recoverInFlight(campaign.id, deps);
    if (recovered > 0) progress.note(`recovered ${recovered} run(s) left in flight by an earlier session`);

    const inScope = (r: RunRow): boolean => opts.cycles === undefined || opts.cycles.includes(r.cycle);
    const todo = manifest.runs(campaign.id, ['pending', 'interrupted', 'failed']).filter(inScope);
    const total = manifest.runs(campaign.id).filter(inScope).length;
    let done = total - todo.length;
    let failed = 0;
    let attemptsTimed = 0;
    let runSeconds = 0;
    let gapSeconds = 0;
    let gapsTimed = 0;
    // ETA: mean run time × runs left, plus the gaps still ahead (mean measured gap, or the nominal one before any).
    const progressNow = (remaining: number, gapsAhead: number): Progress => ({
      done,
      failed,
      remaining,
      total,
      etaS:
        attemptsTimed > 0
          ? (runSeconds / attemptsTimed) * remaining + Math.max(0, gapsAhead) * (gapsTimed > 0 ? gapSeconds / gapsTimed : nominalGapS(settings.thermal_gap))
          : null,
    });

    if (todo.length > 0) {
      const backends = [...new Set(todo.flatMap((r) => experiments.get(r.experimentId)?.config.backend ?? []))];
      const configs = [...new Set(todo.map((r) => r.experimentId))].flatMap((id) => experiments.get(id)?.config ?? []);
      await runtime.prepare(backends, { campaignId: campaign.id, workspaceRoot: deps.workspaceRoot, forceColdStart: settings.force_cold_start, hub: hubNeeds(configs) });
    }
    let left = todo.length;
    const skips = new BackendSkips();
    const started = new Set<number>();
    // One run with its retries; `firstHere`: nothing ran before it where it runs (no thermal gap).
    const runOne = async (planned: RunRow, slot: GpuSlot | undefined, firstHere: boolean): Promise<SlotVerdict> => {
      let first = firstHere;
      const run = slot ? (manifest.run(campaign.id, planned.position) ?? planned) : planned; // placed again after a host loss
      const exp = experiments.get(run.experimentId);
      if (!exp) throw new Error(`manifest has run ${run.position} for unknown experiment ${run.experimentId}`);
      started.add(run.position);
      if (skips.reason(exp.config.backend) !== null) {
        left--;
        return 'continue'; // stays pending: resume runs it once fixed
      }
      const maxAttempt = run.attempt + 1 + settings.retries;
      for (let attempt = run.attempt + 1; attempt <= maxAttempt; attempt++) {
        if (!first && (typeof settings.thermal_gap !== 'number' || settings.thermal_gap > 0)) {
          progress.waiting(nominalGapS(settings.thermal_gap));
          const source = runtime.workerTool ? () => readThermal(runtime, exp.config, slot) : null;
          const gap = await waitThermalGap(settings.thermal_gap, settings.idle, source, clock, signal);
          gapSeconds += gap.waited_s;
          gapsTimed++;
          manifest.note(campaign.id, run.position, 'thermal_gap', { attempt, ...gap });
          progress.gapEnded?.(gap);
        }
        first = false;
        if (signal.aborted) return 'stop';
        const ev: RunEvent = { position: run.position, experimentId: exp.id, experimentName: exp.name, cycle: run.cycle, attempt };
        const remaining = left;
        progress.runStarted(ev, progressNow(remaining, remaining - 1));
        const t0 = clock.monotonicMs();
        const r = await executeAttempt(campaign.id, run, exp.config, attempt, deps, signal, slot);
        const seconds = (clock.monotonicMs() - t0) / 1000;
        attemptsTimed++;
        runSeconds += seconds;
        const decision = r.status === 'failed' ? retryDecision(r.kind ?? 'engine_error', attempt, maxAttempt) : null;
        const willRetry = decision?.retry ?? false;
        if (r.status === 'succeeded') {
          done++;
          skips.succeededOn(exp.config.backend);
        }
        if (r.status === 'failed' && !willRetry) failed++;
        if (!willRetry && !r.hostLost) left--;
        const error = r.error !== null && decision?.why ? `${r.error} (${decision.why})` : r.error;
        progress.runEnded({ ...ev, status: r.status, seconds, error, willRetry, deviceWaitS: r.deviceWaitS, failureKind: r.kind ?? null }, progressNow(left, left));
        if (r.hostLost) return 'requeue';
        if (r.status === 'interrupted') return 'stop';
        if (r.status === 'failed' && !willRetry) {
          const rest = todo.filter((x) => !started.has(x.position) && experiments.get(x.experimentId)?.config.backend === exp.config.backend).length;
          const skip = skips.afterFailure(exp.config.backend, r.kind ?? 'engine_error', r.error, rest);
          if (skip) manifest.note(campaign.id, null, 'backend_skipped', skip.detail);
          if (skip) progress.note(`${skip.message} — fix it, then \`lem campaign resume ${campaign.id}\``);
        }
        if (r.status !== 'failed' || !willRetry) break;
      }
      return 'continue';
    };
    const gpusOf = (r: RunRow): number | null => experiments.get(r.experimentId)?.config.measurement.gpus ?? null;
    const slotsFor = runtime.slots?.bind(runtime);
    if (slotsFor && slotsOfPlan({ items: todo, gpusOf, slotsFor }).length > 1) {
      // Disjoint GPU sets side by side, the plan's order within each (queues.ts).
      await runOnSlots({ items: todo, gpusOf, slotsFor, work: async (run, slot, firstHere) => {
          const verdict = await runOne(run, slot, firstHere);
          if (verdict === 'stop' || (verdict === 'requeue' && signal.aborted)) interrupted = true;
          return verdict;
        },
        onUnplaceable: () => (interrupted = true),
      });
    } else {
      for (let i = 0; i < todo.length && !interrupted; i++) interrupted = (await runOne(todo[i] as RunRow, undefined, i === 0)) !== 'continue';
    }
    const counts = manifest.counts(campaign.id);
    const succeededInScope = opts.cycles === undefined ? counts.succeeded : manifest.runs(campaign.id, ['succeeded']).filter(inScope).length;
    status = interrupted ? 'interrupted' : succeededInScope === total ? 'completed' : 'failed';
    return { status, succeeded: counts.succeeded, failed: counts.failed, interrupted: counts.interrupted, pending: counts.pending + counts.running };
  } catch (e) {
    if (!isDiskFull(e)) {
      status = 'failed';
      throw e;
    }
    // A full disk stops the campaign cleanly: the run in flight is interrupted (re-run on resume).
    status = 'interrupted';
    releaseReserve();
    const errPath = (e as { path?: unknown }).path;
    const path = e instanceof DiskFullError ? e.path : typeof errPath === 'string' ? errPath : (e as { code?: unknown }).code === 'SQLITE_FULL' ? manifest.db.name : deps.workspaceRoot;
    interruptInFlight(campaign.id, manifest, `disk full at ${path}`);
    throw e instanceof DiskFullError ? e : new DiskFullError(path, (e as Error).message);
  } finally {
    try {
      await runtime.shutdown({ keepServices: settings.keep_services, campaignId: campaign.id });
    } finally {
      try {
        releaseReserve();
        manifest.release(campaign.id, status);
      } catch (e) {
        // With the disk full, the release may not be writable either; resume recovers the claim.
        if (!isDiskFull(e)) throw e;
      }
    }
  }
}

/** Marks this campaign's running runs interrupted; best effort (the disk may be too full to write). */
function interruptInFlight(campaignId: string, manifest: Manifest, error: string): void {
  try {
    for (const r of manifest.runs(campaignId, ['running'])) manifest.markEnded(campaignId, r.position, r.attempt, { status: 'interrupted', exitCode: null, error });
  } catch (e) {
    if (!isDiskFull(e)) throw e;
  }
}

/** Stops before a run when the filesystem of the run directories has less than the minimum free. */
function ensureSpace(root: string): void {
  const min = minFreeBytes();
  const free = min > 0 ? freeBytes(root) : null;
  if (free !== null && free < min) throw new DiskFullError(root, `${free} bytes free, less than the ${min} a run needs`);
}

/** A config recorded by this or an earlier lem; one this lem cannot read is a clear error, not a crash. */
function storedConfig(campaignId: string, experimentId: string, config: unknown): ExperimentConfig {
  const parsed = ExperimentConfig.safeParse(config);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    throw new LemError(
      `experiment ${experimentId} of campaign ${campaignId} was recorded with a config this lem cannot read (${first ? `${first.path.join('.')}: ${first.message}` : 'invalid'}); run it with the lem version that planned it, or plan a new campaign.`,
    );
  }
  return parsed.data;
}

interface AttemptResult {
  status: 'succeeded' | 'failed' | 'interrupted';
  error: string | null;
  deviceWaitS?: number | null;
  kind?: FailureKind;
  hostLost?: boolean;
}

async function executeAttempt(
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
function noteDeviceWait(
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

/**
 * Runs marked 'running' belong to an orchestrator that died (kill -9, power loss). First every live
 * worker of the campaign is stopped — found by the attempt token on its command line, so also one
 * started after its run was marked running but before its handle was recorded — and waited for
 * until it is gone, so nothing is dispatched beside it. Then a result it completed is kept (nothing
 * measured is lost); otherwise the run is interrupted and will be run again. Windows of completed
 * orphans' results are recorded, so a recorded run they overlapped is flagged.
 */
async function recoverInFlight(campaignId: string, deps: RunnerDeps): Promise<number> {
  const { manifest, runtime, progress } = deps;
  let recovered = 0;
  if (manifest.runs(campaignId).some((r) => r.attempt > 0)) {
    const stopped = await runtime.stopWorkers(campaignId);
    if (stopped.length > 0) {
      manifest.note(campaignId, null, 'workers_stopped', { workers: stopped.map((w) => ({ token: w.token, where: w.where })) });
      progress.note(`stopped ${stopped.length} worker(s) left running by an earlier session: ${stopped.map((w) => `${w.token} (${w.where})`).join(', ')}`);
    }
    const fetched = (await runtime.recoverResults?.(campaignId, deps.workspaceRoot)) ?? 0;
    if (fetched > 0) progress.note(`fetched ${fetched} result file(s) left on remote hosts by an earlier session`);
    const orphans = recordOrphanWindows(manifest, campaignId, (run, attempt) => runDir(deps.workspaceRoot, campaignId, run, attempt));
    if (orphans > 0) progress.note(`recorded the measured windows of ${orphans} unrecorded result(s) left by earlier sessions`);
  }
  for (const run of manifest.runs(campaignId, ['running'])) {
    if (run.handle) await runtime.reap(run.handle);
    const dir = runDir(deps.workspaceRoot, campaignId, run, run.attempt);
    const resultPath = join(dir, 'result.json');
    if (existsSync(resultPath)) {
      const ingested = ingestResultFile(resultPath, { runId: runId(campaignId, run.position), experimentId: run.experimentId, cycle: run.cycle, attempt: run.attempt });
      const flags = ingested.ok ? checkWindow(manifest, campaignId, run.position, run.attempt, ingested.result, ingested.flags) : [];
      if (ingested.ok) noteDeviceWait(manifest, campaignId, run.position, run.attempt, ingested.result.device_lock);
      if (ingested.ok && manifest.markSucceeded(campaignId, run.position, run.attempt, { resultPath, metrics: ingested.result.metrics, flags, exitCode: null, recovered: true, sha256: ingested.sha256, bytes: ingested.bytes })) {
        recovered++;
        continue;
      }
    }
    manifest.markEnded(campaignId, run.position, run.attempt, {
      status: 'interrupted',
      exitCode: null,
      error: 'the orchestrator stopped while this run was in flight; it is run again',
      failureKind: 'interrupted',
    });
  }
  return recovered;
}

/** The next run's GPU temperatures and power, through the worker where that run will run. */
async function readThermal(runtime: Runtime, config: ExperimentConfig, slot?: GpuSlot): Promise<ThermalReading> {
  const gpus = config.measurement.gpu_ids;
  const args = ['thermal', '--json', ...(gpus && gpus.length ? ['--gpus', gpus.join(',')] : [])];
  const r = await (runtime.workerTool as NonNullable<Runtime['workerTool']>)(config.backend, args, 30, slot);
  if (r.exitCode !== 0) return { gpus: [], reason: `the worker's thermal probe exited ${r.exitCode}: ${r.stderr.trim().slice(0, 300)}` };
  return parseThermal(r.stdout);
}
