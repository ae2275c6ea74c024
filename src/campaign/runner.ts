/**
 * The campaign runner: takes a planned campaign from the manifest and executes its runs in order
 * through a Runtime, with thermal gaps, retries, resume after any crash, and clean interruption.
 * Side effects come in through RunnerDeps, so this file is testable with fakes.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runId, type Manifest, type RunRow } from '../manifest/manifest.js';
import { ingestResultFile } from '../results/ingest.js';
import type { Runtime, RunSpec, ThermalReading } from '../runtime/types.js';
import type { Clock } from '../util/clock.js';
import { LemError } from '../util/errors.js';
import { ExperimentConfig } from '../config/experiment.js';
import { nominalGapS, parseThermal, waitThermalGap, type GapRecord } from './gap.js';

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
  runEnded(e: RunEvent & { status: 'succeeded' | 'failed' | 'interrupted'; seconds: number; error: string | null; willRetry: boolean }, p: Progress): void;
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
      await runtime.prepare(backends, { campaignId: campaign.id, workspaceRoot: deps.workspaceRoot, forceColdStart: settings.force_cold_start });
    }
    let first = true;
    for (let i = 0; i < todo.length && !interrupted; i++) {
      const run = todo[i] as RunRow;
      const exp = experiments.get(run.experimentId);
      if (!exp) throw new Error(`manifest has run ${run.position} for unknown experiment ${run.experimentId}`);
      const maxAttempt = run.attempt + 1 + settings.retries;
      for (let attempt = run.attempt + 1; attempt <= maxAttempt; attempt++) {
        if (!first && (typeof settings.thermal_gap !== 'number' || settings.thermal_gap > 0)) {
          progress.waiting(nominalGapS(settings.thermal_gap));
          const source = runtime.workerTool ? () => readThermal(runtime, exp.config) : null;
          const gap = await waitThermalGap(settings.thermal_gap, settings.idle, source, clock, signal);
          gapSeconds += gap.waited_s;
          gapsTimed++;
          manifest.note(campaign.id, run.position, 'thermal_gap', { attempt, ...gap });
          progress.gapEnded?.(gap);
        }
        first = false;
        if (signal.aborted) {
          interrupted = true;
          break;
        }
        const ev: RunEvent = { position: run.position, experimentId: exp.id, experimentName: exp.name, cycle: run.cycle, attempt };
        const remaining = todo.length - i;
        progress.runStarted(ev, progressNow(remaining, remaining - 1));
        const t0 = clock.monotonicMs();
        const r = await executeAttempt(campaign.id, run, exp.config, attempt, deps, signal);
        const seconds = (clock.monotonicMs() - t0) / 1000;
        attemptsTimed++;
        runSeconds += seconds;
        const willRetry = r.status === 'failed' && attempt < maxAttempt;
        if (r.status === 'succeeded') done++;
        if (r.status === 'failed' && !willRetry) failed++;
        progress.runEnded({ ...ev, status: r.status, seconds, error: r.error, willRetry }, progressNow(remaining - (willRetry ? 0 : 1), remaining - (willRetry ? 0 : 1)));
        if (r.status === 'interrupted') interrupted = true;
        if (r.status !== 'failed') break;
      }
    }
    const counts = manifest.counts(campaign.id);
    const succeededInScope = opts.cycles === undefined ? counts.succeeded : manifest.runs(campaign.id, ['succeeded']).filter(inScope).length;
    status = interrupted ? 'interrupted' : succeededInScope === total ? 'completed' : 'failed';
    return { status, succeeded: counts.succeeded, failed: counts.failed, interrupted: counts.interrupted, pending: counts.pending + counts.running };
  } catch (e) {
    status = 'failed';
    throw e;
  } finally {
    try {
      await runtime.shutdown({ keepServices: settings.keep_services });
    } finally {
      manifest.release(campaign.id, status);
    }
  }
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
}

async function executeAttempt(
  campaignId: string,
  run: RunRow,
  config: ExperimentConfig,
  attempt: number,
  deps: RunnerDeps,
  signal: AbortSignal,
): Promise<AttemptResult> {
  const { manifest, runtime } = deps;
  const dir = runDir(deps.workspaceRoot, campaignId, run, attempt);
  mkdirSync(dir, { recursive: true });
  const id = runId(campaignId, run.position);
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
  };
  writeFileSync(
    spec.configPath,
    JSON.stringify({ run: { run_id: id, experiment_id: run.experimentId, cycle: run.cycle, attempt }, experiment: config }, null, 2),
  );
  manifest.markRunning(campaignId, run.position, attempt);
  const outcome = await runtime.dispatch(spec, signal, (handle) => manifest.setHandle(campaignId, run.position, attempt, handle));

  if (outcome.failureReason === 'interrupted' || (signal.aborted && outcome.exitCode !== 0)) {
    const error = 'interrupted by the user (Ctrl-C or SIGTERM)';
    manifest.markEnded(campaignId, run.position, attempt, { status: 'interrupted', exitCode: outcome.exitCode, error });
    return { status: 'interrupted', error };
  }
  if (outcome.exitCode === 0 && outcome.failureReason === null) {
    const ingested = ingestResultFile(join(dir, 'result.json'), { runId: id, experimentId: run.experimentId, cycle: run.cycle, attempt });
    if (ingested.ok) {
      manifest.markSucceeded(campaignId, run.position, attempt, {
        resultPath: join(dir, 'result.json'),
        metrics: ingested.result.metrics,
        flags: ingested.flags,
        exitCode: 0,
      });
      return { status: 'succeeded', error: null };
    }
    manifest.markEnded(campaignId, run.position, attempt, { status: 'failed', exitCode: 0, error: ingested.reason });
    return { status: 'failed', error: ingested.reason };
  }
  const error = outcome.failureReason ?? `the worker exited with code ${outcome.exitCode}${lastLogLine(spec.logPath)}`;
  manifest.markEnded(campaignId, run.position, attempt, { status: 'failed', exitCode: outcome.exitCode, error });
  return { status: 'failed', error };
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
 * Runs marked 'running' belong to an orchestrator that died (kill -9, power loss). Stop any worker
 * it left behind; keep a result it completed (nothing measured is lost); otherwise the run is
 * interrupted and will be run again.
 */
async function recoverInFlight(campaignId: string, deps: RunnerDeps): Promise<number> {
  const { manifest, runtime } = deps;
  let recovered = 0;
  for (const run of manifest.runs(campaignId, ['running'])) {
    if (run.handle) await runtime.reap(run.handle);
    const dir = runDir(deps.workspaceRoot, campaignId, run, run.attempt);
    const resultPath = join(dir, 'result.json');
    if (existsSync(resultPath)) {
      const ingested = ingestResultFile(resultPath, { runId: runId(campaignId, run.position), experimentId: run.experimentId, cycle: run.cycle, attempt: run.attempt });
      if (ingested.ok && manifest.markSucceeded(campaignId, run.position, run.attempt, { resultPath, metrics: ingested.result.metrics, flags: ingested.flags, exitCode: null, recovered: true })) {
        recovered++;
        continue;
      }
    }
    manifest.markEnded(campaignId, run.position, run.attempt, {
      status: 'interrupted',
      exitCode: null,
      error: 'the orchestrator stopped while this run was in flight; it is run again',
    });
  }
  return recovered;
}

/** The next run's GPU temperatures and power, through the worker where that run will run. */
async function readThermal(runtime: Runtime, config: ExperimentConfig): Promise<ThermalReading> {
  const gpus = config.measurement.gpu_ids;
  const args = ['thermal', '--json', ...(gpus && gpus.length ? ['--gpus', gpus.join(',')] : [])];
  const r = await (runtime.workerTool as NonNullable<Runtime['workerTool']>)(config.backend, args, 30);
  if (r.exitCode !== 0) return { gpus: [], reason: `the worker's thermal probe exited ${r.exitCode}: ${r.stderr.trim().slice(0, 300)}` };
  return parseThermal(r.stdout);
}
