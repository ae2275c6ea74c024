/**
 * The scheduled daemon: fires a campaign's next cycle(s) at the slots of its `schedule:`, one
 * daemon per campaign (a lock in the manifest), restartable at any moment. On start it first
 * finishes the fire that was in flight (recovering its run as resume does), then never fires a
 * slot twice (each fire claims its slot in one transaction); slots missed while it was down are
 * skipped or run late as configured, and the choice is logged. The CLI only parses and prints.
 */
import { resolve } from 'node:path';
import type { Manifest, CampaignRow } from '../manifest/manifest.js';
import { FireStore, lockHeld, type DaemonRow, type FireRow } from '../manifest/fires.js';
import type { Runtime } from '../runtime/types.js';
import type { Clock } from '../util/clock.js';
import { LemError } from '../util/errors.js';
import { ExperimentConfig } from '../config/experiment.js';
import { preflight, type PreflightExperiment } from './preflight.js';
import { executeCampaign, type ProgressSink } from './runner.js';
import { decide, nextCycles, ScheduleMath } from './schedule.js';

/** What the daemon reports besides run progress (the CLI prints it and logs it as JSON). */
export interface DaemonSink {
  event(kind: string, message: string, detail?: Record<string, unknown>): void;
}

export interface DaemonDeps {
  manifest: Manifest;
  /** A fresh runtime for each fire (services are started for the fire and removed after it). */
  runtime: () => Promise<Runtime>;
  clock: Clock;
  workspaceRoot: string;
  progress: ProgressSink;
  sink: DaemonSink;
  /** Where this daemon's JSON log goes (recorded with the lock for `daemon status`). */
  logPath: string;
}

export type EndReason = 'all_cycles_done' | 'max_fires_reached' | 'until_reached';
export const END_REASONS: readonly string[] = ['all_cycles_done', 'max_fires_reached', 'until_reached'];

export interface DaemonOutcome {
  /** ended: the schedule is over (exit 0); stopped: a signal stopped the daemon. */
  status: 'ended' | 'stopped';
  reason: EndReason | 'signal';
  fires: number;
  /** A fire was interrupted by the stop (its cycle is finished by the next daemon). */
  interruptedFire: boolean;
}

export function scheduleOf(c: CampaignRow): ScheduleMath {
  const s = c.settings.schedule;
  if (!s) throw new LemError(`campaign ${c.id} has no schedule: add \`schedule: {cron: "0 2 * * *"}\` (or \`at: ["02:00"]\`) to its file, or run it with \`lem campaign run\`.`);
  return new ScheduleMath(s);
}

/**
 * The campaign a daemon of FILE continues: the newest one planned from the same file (same
 * name) whose schedule has not ended. null: plan a new one.
 */
export function campaignForFile(manifest: Manifest, file: string, name: string): CampaignRow | null {
  const store = new FireStore(manifest);
  const path = resolve(file);
  const mine = manifest
    .campaigns()
    .filter((c) => c.name === name && c.settings.schedule !== undefined && resolve(c.sourcePath) === path)
    .reverse();
  const latest = mine[0];
  if (!latest) return null;
  const d = store.daemon(latest.id);
  if (d && d.endReason !== null && END_REASONS.includes(d.endReason)) return null;
  return latest;
}

/** The experiments of the runs a fire of `cycles` will run (what its preflight asks about). */
function fireExperiments(manifest: Manifest, campaignId: string, cycles: readonly number[]): PreflightExperiment[] {
  const todo = new Set(manifest.runs(campaignId, ['pending', 'running', 'failed', 'interrupted']).filter((r) => cycles.includes(r.cycle)).map((r) => r.experimentId));
  return manifest
    .experiments(campaignId)
    .filter((e) => todo.has(e.id))
    .flatMap((e) => {
      const parsed = ExperimentConfig.safeParse(e.config);
      return parsed.success ? [{ backend: parsed.data.backend, config: parsed.data }] : []; // the runner names an unreadable one
    });
}

export async function runDaemon(campaignId: string, deps: DaemonDeps, signal: AbortSignal): Promise<DaemonOutcome> {
  const { manifest, clock, sink } = deps;
  const campaign = manifest.findCampaign(campaignId);
  const math = scheduleOf(campaign);
  const store = new FireStore(manifest);
  store.acquire(campaign.id, clock.now(), deps.logPath);
  const perFire = campaign.settings.schedule?.cycles_per_fire ?? 1;
  let outcome: DaemonOutcome = { status: 'stopped', reason: 'signal', fires: 0, interruptedFire: false };
  sink.event('daemon_started', `daemon for ${campaign.id}: schedule ${describeSchedule(campaign)} (time zone ${math.timezone})`, { pid: process.pid });

  const runFire = async (fire: FireRow): Promise<void> => {
    let status: 'succeeded' | 'failed' | 'interrupted' = 'failed';
    let error: string | null = null;
    try {
      const runtime = await deps.runtime();
      // Each fire re-runs the (cheap) preflight: an image removed or a package uninstalled since the
      // daemon started fails this fire with its reason (an event), not the daemon; the next slot tries again.
      const pre = await preflight(runtime, fireExperiments(manifest, campaign.id, fire.cycles));
      if (!pre.ok) {
        manifest.note(campaign.id, null, 'fire_preflight_failed', { slot: fire.slot, problems: pre.problems });
        throw new LemError(`preflight failed, no run started: ${pre.problems.map((p) => `${p.backend}: ${p.message}${p.fix ? ` (fix: ${p.fix})` : ''}`).join('; ')}`);
      }
      const o = await executeCampaign(campaign.id, { manifest, runtime, clock, workspaceRoot: deps.workspaceRoot, progress: deps.progress }, signal, { cycles: fire.cycles });
      status = o.status === 'completed' ? 'succeeded' : o.status;
      if (status === 'failed') error = `${o.failed} run(s) failed`;
    } catch (e) {
      error = e instanceof Error ? e.message : String(e);
      status = signal.aborted ? 'interrupted' : 'failed';
    }
    store.end(campaign.id, fire.slot, clock.now(), status, error);
    store.setError(campaign.id, error);
    if (status === 'interrupted') outcome.interruptedFire = true;
    sink.event('fire_ended', `fire #${fire.seq} (slot ${fire.slot}, cycle ${fire.cycles.join(', ')}): ${status}${error ? ` — ${error}` : ''}`, { slot: fire.slot, status, error });
  };

  try {
    // A fire left in flight by an earlier daemon is finished first (its run recovered as resume does).
    for (const fire of store.unfinished(campaign.id)) {
      if (signal.aborted) break;
      manifest.note(campaign.id, null, 'fire_recovered', { slot: fire.slot, seq: fire.seq, cycles: fire.cycles });
      sink.event('fire_recovered', `finishing fire #${fire.seq} (slot ${fire.slot}, cycle ${fire.cycles.join(', ')}) left in flight by an earlier daemon`, { slot: fire.slot });
      await runFire(fire);
    }
    while (!signal.aborted) {
      const d = store.daemon(campaign.id) as DaemonRow;
      const now = clock.now();
      const decision = decide(math, {
        cursor: new Date(d.cursorAt),
        firesDone: store.fires(campaign.id).length,
        cyclesLeft: nextCycles(store.unfinishedRuns(campaign.id), Number.MAX_SAFE_INTEGER).length,
        now,
      });
      if (decision.kind === 'end') {
        outcome = { ...outcome, status: 'ended', reason: decision.reason };
        manifest.note(campaign.id, null, 'schedule_ended', { reason: decision.reason });
        sink.event('schedule_ended', `schedule ended: ${decision.reason.replace(/_/g, ' ')}`, { reason: decision.reason });
        break;
      }
      if (decision.kind === 'missed' && decision.action === 'skip') {
        store.skip(campaign.id, decision.slots, decision.more);
        sink.event('slots_skipped', `skipped ${decision.slots.length}${decision.more ? '+' : ''} slot(s) missed while the daemon was down or busy (${decision.slots[0]?.toISOString()} … ${decision.slots[decision.slots.length - 1]?.toISOString()}; schedule.missed: skip)`);
        continue;
      }
      if (decision.kind === 'wait') {
        sink.event('waiting', `next fire at ${decision.slot.toISOString()}`, { next_fire: decision.slot.toISOString() });
        await clock.sleep(Math.max(0, decision.slot.getTime() - now.getTime()), signal);
        continue;
      }
      const slot = decision.kind === 'fire' ? decision.slot : (decision.slots[0] as Date);
      const late = decision.kind === 'missed';
      const cycles = nextCycles(store.unfinishedRuns(campaign.id), perFire);
      const fire = store.claim(campaign.id, slot, clock.now(), cycles, late);
      if (!fire) continue; // already fired by an earlier daemon: never twice
      outcome.fires++;
      sink.event(
        'fire_started',
        `fire #${fire.seq}: slot ${fire.slot}${late ? ` (missed, run late: schedule.missed is run_late)` : ''}, cycle ${cycles.join(', ')}`,
        { slot: fire.slot, seq: fire.seq, cycles, late },
      );
      await runFire(fire);
    }
  } catch (e) {
    store.setError(campaign.id, e instanceof Error ? e.message : String(e));
    throw e;
  } finally {
    store.release(campaign.id, clock.now(), { reason: outcome.status === 'ended' ? outcome.reason : 'stopped' });
  }
  return outcome;
}

export function describeSchedule(c: CampaignRow): string {
  const s = c.settings.schedule;
  if (!s) return 'none';
  const parts = [s.cron !== undefined ? `cron "${s.cron}"` : `at ${(s.at ?? []).join(', ')}`];
  if (s.max_fires !== undefined) parts.push(`max ${s.max_fires} fires`);
  if (s.until !== undefined) parts.push(`until ${s.until}`);
  if (s.cycles_per_fire !== 1) parts.push(`${s.cycles_per_fire} cycles per fire`);
  parts.push(`missed: ${s.missed}`);
  return parts.join(', ');
}

export interface DaemonStatus {
  campaign_id: string;
  campaign_status: string;
  schedule: string;
  timezone: string;
  daemon: { pid: number | null; host: string | null; running: boolean; started_at: string | null; log_path: string | null; ended_at: string | null; end_reason: string | null };
  next_fire: string | null;
  fires_done: number;
  fires_left: number | null;
  cycles_left: number;
  run_in_progress: { position: number; cycle: number; experiment_id: string; started_at: string | null } | null;
  last_error: string | null;
  /** Each fire: its slot (the scheduled start), when it started, and each of its runs' actual start. */
  fires: Array<{
    seq: number;
    slot: string;
    started_at: string;
    ended_at: string | null;
    status: string;
    late: boolean;
    cycles: number[];
    error: string | null;
    runs: Array<{ position: number; cycle: number; status: string; scheduled_at: string; started_at: string | null }>;
  }>;
}

/** `daemon status`: read-only, safe while a daemon writes. */
export function daemonStatus(manifest: Manifest, campaignId: string, now: Date): DaemonStatus {
  const c = manifest.findCampaign(campaignId);
  const math = scheduleOf(c);
  const store = new FireStore(manifest);
  const d = store.daemon(c.id);
  const fires = store.fires(c.id);
  const cyclesLeft = nextCycles(store.unfinishedRuns(c.id), Number.MAX_SAFE_INTEGER).length;
  const ended = d !== null && d.endReason !== null && END_REASONS.includes(d.endReason);
  const cursor = d ? new Date(d.cursorAt) : now;
  const max = c.settings.schedule?.max_fires;
  const perFire = c.settings.schedule?.cycles_per_fire ?? 1;
  const byCycles = Math.ceil(cyclesLeft / perFire);
  const left = ended ? 0 : max !== undefined ? Math.min(Math.max(0, max - fires.length), byCycles) : byCycles;
  const nextFire = ended || left === 0 ? null : math.next(cursor.getTime() > now.getTime() ? cursor : now);
  const running = manifest.runs(c.id, ['running'])[0];
  const runLinks = store.runFires(c.id);
  return {
    campaign_id: c.id,
    campaign_status: c.status,
    schedule: describeSchedule(c),
    timezone: math.timezone,
    daemon: {
      pid: d?.pid ?? null,
      host: d?.host ?? null,
      running: lockHeld(d),
      started_at: d?.startedAt ?? null,
      log_path: d?.logPath ?? null,
      ended_at: d?.endedAt ?? null,
      end_reason: d?.endReason ?? null,
    },
    next_fire: nextFire ? nextFire.toISOString() : null,
    fires_done: fires.length,
    fires_left: left,
    cycles_left: cyclesLeft,
    run_in_progress: running ? { position: running.position, cycle: running.cycle, experiment_id: running.experimentId, started_at: running.startedAt } : null,
    last_error: d?.lastError ?? null,
    fires: fires.map((f) => ({
      seq: f.seq,
      slot: f.slot,
      started_at: f.startedAt,
      ended_at: f.endedAt,
      status: f.status,
      late: f.late,
      cycles: f.cycles,
      error: f.error,
      runs: runLinks.filter((r) => r.fireSlot === f.slot).map((r) => ({ position: r.position, cycle: r.cycle, status: r.status, scheduled_at: f.slot, started_at: r.startedAt })),
    })),
  };
}

/** The daemon to stop or show: the campaign given, else the one daemon holding a lock (or the newest). */
export function pickDaemonCampaign(manifest: Manifest, idOrPrefix: string | undefined): string {
  if (idOrPrefix) return manifest.findCampaign(idOrPrefix).id;
  const rows = new FireStore(manifest).daemons();
  const live = rows.filter((d) => lockHeld(d));
  if (live.length > 1) throw new LemError(`${live.length} daemons are running (${live.map((d) => d.campaignId).join(', ')}); name the campaign.`);
  const pick = live[0] ?? rows[0];
  if (!pick) throw new LemError('no campaign in this manifest has a daemon; start one with `lem daemon run FILE` or `lem daemon start FILE`.');
  return pick.campaignId;
}

/** Signals the daemon holding the campaign's lock to stop (SIGTERM); who it was, or null if none runs. */
export function signalDaemon(manifest: Manifest, campaignId: string, host: string): { pid: number } | null {
  const d = new FireStore(manifest).daemon(campaignId);
  if (!d || !lockHeld(d, host) || d.pid === null) return null;
  if (d.host !== host) throw new LemError(`the daemon of ${campaignId} runs on ${d.host ?? 'another host'} (pid ${d.pid}); stop it there.`);
  process.kill(d.pid, 'SIGTERM');
  return { pid: d.pid };
}

export function daemonHeld(manifest: Manifest, campaignId: string): boolean {
  return lockHeld(new FireStore(manifest).daemon(campaignId));
}
