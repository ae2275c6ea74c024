/**
 * The campaign runner: takes a planned campaign from the manifest and executes its runs in order
 * through a Runtime, with thermal gaps, retries, resume after any crash, and clean interruption.
 * Side effects come in through RunnerDeps, so this file is testable with fakes. One attempt of a run is
 * attempt.ts; recovering the runs a dead orchestrator left in flight, recover.ts; the types, run-types.ts.
 */
import { join } from 'node:path';
import type { Manifest, RunRow } from '../manifest/manifest.js';
import type { GpuSlot, Runtime, ThermalReading } from '../runtime/types.js';
import { runOnSlots, slotsOfPlan, type SlotVerdict } from './queues.js';
import { hubNeeds } from './hub-needs.js';
import { DiskFullError, isDiskFull, LemError } from '../util/errors.js';
import { reserveSpace } from '../util/disk.js';
import { ExperimentConfig } from '../config/experiment.js';
import { nominalGapS, parseThermal, waitThermalGap } from './gap.js';
import { BackendSkips, retryDecision } from './retry.js';
import { executeAttempt } from './attempt.js';
import { recoverInFlight } from './recover.js';
import type { CampaignOutcome, ExecuteOptions, Progress, RunEvent, RunnerDeps } from './run-types.js';

export { RUN_FILE_MODE, runDir, type CampaignOutcome, type ExecuteOptions, type Progress, type ProgressSink, type RunEvent, type RunnerDeps } from './run-types.js';

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

/** The next run's GPU temperatures and power, through the worker where that run will run. */
async function readThermal(runtime: Runtime, config: ExperimentConfig, slot?: GpuSlot): Promise<ThermalReading> {
  const gpus = config.measurement.gpu_ids;
  const args = ['thermal', '--json', ...(gpus && gpus.length ? ['--gpus', gpus.join(',')] : [])];
  const r = await (runtime.workerTool as NonNullable<Runtime['workerTool']>)(config.backend, args, 30, slot);
  if (r.exitCode !== 0) return { gpus: [], reason: `the worker's thermal probe exited ${r.exitCode}: ${r.stderr.trim().slice(0, 300)}` };
  return parseThermal(r.stdout);
}
