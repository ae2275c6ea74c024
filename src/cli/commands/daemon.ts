/** `lem daemon run | start | stop | status`: parsing and printing; the use cases are src/campaign/daemon.ts. */
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { daemonHeld, daemonStatus, pickDaemonCampaign, runDaemon, signalDaemon, type DaemonSink } from '../../campaign/daemon.js';
import type { ProgressSink } from '../../campaign/runner.js';
import type { CampaignSettings } from '../../config/campaign.js';
import { loadCampaign } from '../../config/load.js';
import type { Runtime } from '../../runtime/types.js';
import type { RuntimeName } from '../../config/campaign.js';
import { createRuntime } from '../../runtime/index.js';
import { systemClock } from '../../util/clock.js';
import { EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, LemError } from '../../util/errors.js';
import { fileLogger, type Logger } from '../../util/logger.js';
import { packageRoot } from '../../util/paths.js';
import { printJson, type CliContext } from '../context.js';
import { printPreflight } from './campaign.js';
import { duration } from '../format.js';
import { daemonCampaign } from '../../campaign/daemon-start.js';

export interface DaemonRunOptions {
  runtime?: RuntimeName;
  new?: boolean;
}

const daemonLogPath = (ctx: CliContext, campaignId: string): string => join(ctx.stateDir, 'daemon', `${campaignId}.log`);
const stamp = (): string => new Date().toISOString().replace('T', ' ').slice(0, 19);

/** The campaign a daemon of FILE runs: the one it left off, or a newly planned one; preflighted first (campaign/daemon-start.ts). */
async function campaignFor(ctx: CliContext, file: string, opts: DaemonRunOptions): Promise<string> {
  const loaded = loadCampaign(resolve(file));
  if (opts.runtime) loaded.settings.runtime = opts.runtime;
  for (const n of loaded.notes) ctx.err(`note: ${n}`);
  const manifest = ctx.openManifest();
  try {
    const runtime = (settings: CampaignSettings): Promise<Runtime> => {
      const { hosts, slurm } = settings;
      return createRuntime(opts.runtime ?? settings.runtime, { log: (m) => ctx.err(`runtime: ${m}`), ...(hosts ? { hosts } : {}), ...(slurm ? { slurm } : {}) });
    };
    const started = await daemonCampaign(loaded, { manifest, runtime, clock: systemClock, fresh: opts.new === true });
    printPreflight(ctx, started.preflight);
    if (started.created) ctx.err(`${stamp()} campaign ${started.id}: ${loaded.experiments.length} experiment(s) × ${loaded.settings.cycles} cycle(s) = ${started.runs} run(s), runtime ${loaded.settings.runtime}`);
    return started.id;
  } finally {
    manifest.close();
  }
}

function progressFor(ctx: CliContext, log: Logger): ProgressSink {
  return {
    note: (m) => {
      log.info({ event: 'note' }, m);
      ctx.err(`${stamp()}   note: ${m}`);
    },
    runStarted: (e, p) => {
      log.info({ event: 'run_started', ...e, progress: p });
      ctx.err(`${stamp()}   [${p.done + p.failed + 1}/${p.total}] ${e.experimentName} · cycle ${e.cycle}${e.attempt > 1 ? ` · attempt ${e.attempt}` : ''} …`);
    },
    runEnded: (e, p) => {
      log.info({ event: 'run_ended', ...e, progress: p });
      const mark = e.status === 'succeeded' ? 'ok' : e.status === 'interrupted' ? 'INTERRUPTED' : e.willRetry ? 'FAILED (will retry)' : 'FAILED';
      ctx.err(`${stamp()}       ${mark} in ${e.seconds.toFixed(1)}s${e.error ? ` — ${e.error}` : ''} | ETA of this fire ${duration(p.etaS)}`);
    },
    waiting: (s) => log.debug({ event: 'thermal_gap', seconds: s }),
    gapEnded: (g) => {
      log.info({ event: 'thermal_gap_ended', ...g });
      if (g.waited_s >= 1) ctx.err(`${stamp()}       thermal gap ${g.waited_s.toFixed(1)}s (${g.reason}${g.start_temp_c !== null ? `, from ${g.start_temp_c} °C` : ''})`);
    },
  };
}

/** `lem daemon run FILE`: the foreground daemon (systemd, a container, a terminal). */
export async function daemonRun(ctx: CliContext, file: string, opts: DaemonRunOptions): Promise<number> {
  const id = await campaignFor(ctx, file, opts);
  const manifest = ctx.openManifest();
  const logPath = daemonLogPath(ctx, id);
  const log = fileLogger(logPath);
  const sink: DaemonSink = {
    event: (kind, message, detail = {}) => {
      log.info({ event: kind, campaign: id, ...detail }, message);
      ctx.err(`${stamp()} ${message}`);
    },
  };
  const controller = new AbortController();
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals): void => {
    signals++;
    if (signals === 1) {
      sink.event('signal', `${sig}: stopping (a run in progress is interrupted and finished by the next daemon; again to force)`, { signal: sig });
      controller.abort();
    } else process.exit(EXIT_INTERRUPTED);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const { runtime: stored, slurm, hosts } = manifest.findCampaign(id).settings;
    const runtimeName = opts.runtime ?? stored;
    const outcome = await runDaemon(
      id,
      {
        manifest,
        runtime: () => createRuntime(runtimeName, { log: (m) => sink.event('runtime', `runtime: ${m}`), ...(hosts ? { hosts } : {}), ...(slurm ? { slurm } : {}) }),
        clock: systemClock,
        workspaceRoot: ctx.stateDir,
        progress: progressFor(ctx, log),
        sink,
        logPath,
      },
      controller.signal,
    );
    log.info({ event: 'daemon_exit', outcome });
    ctx.err(`${stamp()} daemon ${outcome.status} (${outcome.reason.replace(/_/g, ' ')}): ${outcome.fires} fire(s) this session; \`lem daemon status ${id}\``);
    return outcome.interruptedFire ? EXIT_INTERRUPTED : EXIT_OK;
  } catch (e) {
    log.error({ event: 'daemon_error', err: e });
    throw e;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    manifest.close();
  }
}

/** `lem daemon start FILE`: the same daemon, detached; returns once it holds its lock. */
export async function daemonStart(ctx: CliContext, file: string, opts: DaemonRunOptions): Promise<number> {
  const id = await campaignFor(ctx, file, opts);
  {
    const manifest = ctx.openManifest();
    try {
      if (daemonHeld(manifest, id)) {
        const s = daemonStatus(manifest, id, systemClock.now());
        throw new LemError(`campaign ${id} already has a daemon: process ${s.daemon.pid} on ${s.daemon.host}; \`lem daemon stop ${id}\` first.`);
      }
    } finally {
      manifest.close();
    }
  }
  const outPath = join(ctx.stateDir, 'daemon', `${id}.out`);
  mkdirSync(join(ctx.stateDir, 'daemon'), { recursive: true });
  const out = openSync(outPath, 'a');
  const args = [join(packageRoot(), 'bin', 'lem.js'), '--state', ctx.stateDir, '--db', ctx.dbPath, 'daemon', 'run', resolve(file), ...(opts.runtime ? ['--runtime', opts.runtime] : [])];
  const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', out, out] });
  closeSync(out);
  let exited: number | null | undefined;
  child.once('exit', (code) => (exited = code));
  child.unref();
  for (let i = 0; i < 300; i++) {
    await systemClock.sleep(100);
    if (exited !== undefined) {
      ctx.err(readFileSync(outPath, 'utf8').trim().split('\n').slice(-5).join('\n'));
      return exited === 0 ? EXIT_OK : EXIT_USAGE;
    }
    const manifest = ctx.openManifest();
    try {
      const s = daemonStatus(manifest, id, systemClock.now());
      if (s.daemon.running && s.daemon.pid === child.pid) {
        ctx.out(`daemon started: pid ${child.pid}, campaign ${id}`);
        ctx.out(`next fire ${s.next_fire ?? '—'} · log ${s.daemon.log_path} · output ${outPath}`);
        ctx.out(`stop with: lem daemon stop ${id}`);
        return EXIT_OK;
      }
    } finally {
      manifest.close();
    }
  }
  throw new LemError(`the daemon (pid ${child.pid}) did not take its lock within 30 s; see ${outPath}.`, 1);
}

/** `lem daemon stop [CAMPAIGN]`: SIGTERM to the lock holder, then wait until it let go. */
export async function daemonStop(ctx: CliContext, campaign: string | undefined): Promise<number> {
  const manifest = ctx.openManifest();
  try {
    const id = pickDaemonCampaign(manifest, campaign);
    const who = signalDaemon(manifest, id, hostname());
    if (!who) {
      ctx.out(`no daemon is running for ${id}.`);
      return EXIT_OK;
    }
    ctx.err(`sent SIGTERM to daemon pid ${who.pid} (${id}); waiting for it to stop…`);
    for (let i = 0; i < 600; i++) {
      if (!daemonHeld(manifest, id)) {
        ctx.out(`daemon of ${id} stopped.`);
        return EXIT_OK;
      }
      await systemClock.sleep(100);
    }
    throw new LemError(`daemon pid ${who.pid} has not stopped after 60 s; it may be finishing a run (\`kill -9 ${who.pid}\` is safe: the next daemon recovers).`, 1);
  } finally {
    manifest.close();
  }
}

/** `lem daemon status [CAMPAIGN] [--json]`. */
export function daemonStatusCommand(ctx: CliContext, campaign: string | undefined, opts: { json?: boolean }): number {
  const manifest = ctx.openManifest();
  try {
    const s = daemonStatus(manifest, pickDaemonCampaign(manifest, campaign), systemClock.now());
    if (opts.json) {
      printJson(ctx, 'daemon.status', { ...s });
      return EXIT_OK;
    }
    const d = s.daemon;
    ctx.out(`${s.campaign_id} — campaign ${s.campaign_status}`);
    ctx.out(`schedule: ${s.schedule} (time zone ${s.timezone})`);
    ctx.out(
      `daemon: ${d.running ? `running, pid ${d.pid} on ${d.host} since ${d.started_at}` : `not running${d.ended_at ? ` (stopped ${d.ended_at}${d.end_reason ? `: ${d.end_reason.replace(/_/g, ' ')}` : ''})` : ''}`}`,
    );
    ctx.out(`next fire: ${s.next_fire ?? '— (schedule over)'} · fires done ${s.fires_done} · left ${s.fires_left ?? '?'} · cycles left ${s.cycles_left}`);
    if (s.run_in_progress) ctx.out(`run in progress: position ${s.run_in_progress.position}, cycle ${s.run_in_progress.cycle}, since ${s.run_in_progress.started_at}`);
    if (s.last_error) ctx.out(`last error: ${s.last_error}`);
    for (const f of s.fires.slice(-5)) ctx.out(`  #${f.seq} ${f.slot} cycle ${f.cycles.join(',')}: ${f.status}${f.late ? ' (late)' : ''}${f.error ? ` — ${f.error}` : ''}`);
    if (d.log_path) ctx.out(`log: ${d.log_path}`);
    return EXIT_OK;
  } finally {
    manifest.close();
  }
}
