/** `lem campaign run | resume`: parse, print; the use cases are campaign/start.ts (preflight, id, plan, record) and campaign/runner.ts. */
import { join } from 'node:path';
import { loadCampaign } from '../../config/load.js';
import type { CampaignSettings, RuntimeName } from '../../config/campaign.js';
import { describeDesign, planCampaign } from '../../campaign/design.js';
import type { PreflightReport } from '../../campaign/preflight.js';
import { executeCampaign, type CampaignOutcome, type ProgressSink } from '../../campaign/runner.js';
import { preflightResume, startCampaign } from '../../campaign/start.js';
import type { CampaignRow, Manifest } from '../../manifest/manifest.js';
import type { Runtime } from '../../runtime/types.js';
import { campaignRecords } from '../../results/records.js';
import { CI_METHOD_LABEL, flagCounts, intervalNotes, summarize } from '../../results/summary.js';
import { createRuntime } from '../../runtime/index.js';
import { systemClock } from '../../util/clock.js';
import { fileLogger, type Logger } from '../../util/logger.js';
import { EXIT_FAILED_RUNS, EXIT_INTERRUPTED, EXIT_OK } from '../../util/errors.js';
import { printJson, type CliContext } from '../context.js';
import { loadOptions } from './config.js';
import { duration, flaggedSummary, num, pct, table } from '../format.js';

export interface RunOptions {
  json?: boolean;
  maxRuns?: string;
  runtime?: RuntimeName;
  keepServices?: boolean;
  dryRun?: boolean;
}

/** One line per backend: where it was probed, and what its worker reported. */
export function printPreflight(ctx: CliContext, report: PreflightReport): void {
  for (const b of report.backends) {
    const pkgs = Object.entries(b.packages ?? {})
      .map(([k, v]) => `${k} ${v ?? 'MISSING'}`)
      .join(', ');
    const gpus = b.gpus === null ? '' : b.gpus.count > 0 ? `; ${b.gpus.count} GPU(s): ${b.gpus.names.join('; ')}` : `; no GPU${b.gpus.reason ? ` (${b.gpus.reason})` : ''}`;
    ctx.err(`preflight: ${b.backend} ok in ${b.where}${pkgs ? `: ${pkgs}` : ''}${gpus}`);
  }
  for (const n of report.notes) ctx.err(`note: ${n}`);
}

function runtimeFor(ctx: CliContext, name: CampaignSettings['runtime'], settings: Pick<CampaignSettings, 'hosts' | 'slurm'>): Promise<Runtime> {
  const { hosts, slurm } = settings;
  return createRuntime(name, { log: (m) => ctx.err(`runtime: ${m}`), ...(hosts ? { hosts } : {}), ...(slurm ? { slurm } : {}) });
}

export async function campaignRun(ctx: CliContext, file: string, opts: RunOptions): Promise<number> {
  const loaded = loadCampaign(file, loadOptions(ctx, opts.maxRuns));
  const planned = loaded.experiments.length * loaded.settings.cycles;
  if (planned >= 20_000) ctx.err(`planning ${planned.toLocaleString('en-US')} runs (${loaded.experiments.length} experiments × ${loaded.settings.cycles} cycles)…`);
  if (opts.runtime) loaded.settings.runtime = opts.runtime;
  if (opts.keepServices) loaded.settings.keep_services = true;
  for (const n of loaded.notes) ctx.err(`note: ${n}`);
  if (opts.dryRun) {
    const { runs, design } = planCampaign(loaded.experiments, loaded.settings);
    const names = new Map(loaded.experiments.map((e) => [e.id, e.name]));
    if (opts.json) printJson(ctx, 'campaign.dry_run', { campaign: loaded.name, runs: runs.map((r) => ({ ...r, name: names.get(r.experimentId) })), design });
    else {
      for (const r of runs) ctx.out(`${String(r.position + 1).padStart(4)}  cycle ${r.cycle}  ${names.get(r.experimentId) ?? r.experimentId}`);
      const cold = loaded.settings.force_cold_start ? ' (force_cold_start: every run loads afresh)' : ` with warm engines (${design.whole_plots} whole plots; reloading every run: ${design.engine_loads_reload_every_run})`;
      ctx.out(`engine loads: ${design.engine_loads}${cold}`);
      ctx.out(describeDesign(design));
    }
    return EXIT_OK;
  }
  const runtime = await runtimeFor(ctx, loaded.settings.runtime, loaded.settings);
  const manifest = ctx.openManifest();
  try {
    const { id, runs: n, preflight } = await startCampaign(loaded, { manifest, runtime, clock: systemClock });
    printPreflight(ctx, preflight);
    ctx.err(`campaign ${id}: ${loaded.experiments.length} experiment(s) × ${loaded.settings.cycles} cycle(s) = ${n} run(s), ${loaded.settings.structure} order, seed ${loaded.settings.seed}, runtime ${loaded.settings.runtime}`);
    const design = manifest.design(id);
    if (design) ctx.err(`plan: ${describeDesign(design)}`);
    ctx.err(`manifest: ${ctx.dbPath}   resume with: lem campaign resume ${id}`);
    return await execute(ctx, manifest, id, runtime, opts);
  } finally {
    manifest.close();
  }
}

export async function campaignResume(ctx: CliContext, id: string, opts: RunOptions): Promise<number> {
  const manifest = ctx.openManifest();
  try {
    const c = manifest.findCampaign(id);
    const runtime = await runtimeFor(ctx, opts.runtime ?? c.settings.runtime, c.settings);
    printPreflight(ctx, await preflightResume(manifest, c, runtime));
    const counts = manifest.counts(c.id);
    ctx.err(`resuming ${c.id}: ${counts.succeeded} succeeded (kept), ${counts.pending + counts.failed + counts.interrupted + counts.running} to run`);
    return await execute(ctx, manifest, c.id, runtime, opts);
  } finally {
    manifest.close();
  }
}

/** Progress for people on stderr, and the same events as JSON lines in the campaign's log. */
function consoleProgress(ctx: CliContext, log: Logger): ProgressSink {
  return {
    note: (m) => {
      log.info({ event: 'note' }, m);
      ctx.err(`note: ${m}`);
    },
    runStarted: (e, p) => {
      log.info({ event: 'run_started', ...e, progress: p });
      ctx.err(`[${p.done + p.failed + 1}/${p.total}] ${e.experimentName} · cycle ${e.cycle}${e.attempt > 1 ? ` · attempt ${e.attempt}` : ''} …`);
    },
    runEnded: (e, p) => {
      log.info({ event: 'run_ended', ...e, progress: p });
      const kind = e.failureKind && e.status === 'failed' ? ` [${e.failureKind}]` : '';
      const mark = e.status === 'succeeded' ? 'ok' : e.status === 'interrupted' ? 'INTERRUPTED' : `FAILED${kind}${e.willRetry ? ' (will retry)' : ''}`;
      ctx.err(
        `    ${mark} in ${e.seconds.toFixed(1)}s${e.deviceWaitS ? ` (waited ${e.deviceWaitS.toFixed(1)}s for the device lock)` : ''}${e.error ? ` — ${e.error}` : ''} | done ${p.done}, failed ${p.failed}, remaining ${p.remaining} | ETA ${duration(p.etaS)}`,
      );
    },
    waiting: (s) => {
      log.debug({ event: 'thermal_gap', seconds: s });
      if (s >= 1) ctx.err(`    thermal gap ${s}s`);
    },
  };
}

async function execute(ctx: CliContext, manifest: Manifest, id: string, runtime: Runtime, opts: RunOptions): Promise<number> {
  const campaign = manifest.findCampaign(id);
  const log = fileLogger(join(ctx.stateDir, 'runs', campaign.id, 'orchestrator.log'));
  log.info({ event: 'session_started', runtime: runtime.name, argv: process.argv.slice(2) });
  const controller = new AbortController();
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals): void => {
    signals++;
    if (signals === 1) {
      ctx.err(`\n${sig}: stopping after marking the running run interrupted (again to force)…`);
      controller.abort();
    } else {
      process.exit(EXIT_INTERRUPTED);
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let outcome: CampaignOutcome;
  try {
    outcome = await executeCampaign(campaign.id, { manifest, runtime, clock: systemClock, workspaceRoot: ctx.stateDir, progress: consoleProgress(ctx, log) }, controller.signal);
    log.info({ event: 'campaign_ended', outcome });
  } catch (e) {
    try {
      log.error({ event: 'campaign_error', err: e });
    } catch {
      // the log may be on the full disk; the error itself is what matters
    }
    throw e;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  const { summary, flags } = summaryRows(manifest, campaign);
  if (opts.json) printJson(ctx, 'campaign.run', { campaign: campaign.id, outcome, summary, flags: { flagged: flags.flagged, by_gate: flags.byGate } });
  else {
    ctx.out(`\ncampaign ${campaign.id}: ${outcome.status} — ${outcome.succeeded} succeeded, ${outcome.failed} failed, ${outcome.interrupted} interrupted; ${flaggedSummary(flags.flagged, flags.byGate)}`);
    ctx.out(renderSummary(summary));
    if (outcome.status === 'interrupted') ctx.out(`\nresume with: lem campaign resume ${campaign.id}`);
  }
  return outcome.status === 'completed' ? EXIT_OK : outcome.status === 'interrupted' ? EXIT_INTERRUPTED : EXIT_FAILED_RUNS;
}

function summaryRows(manifest: Manifest, c: CampaignRow): { summary: ReturnType<typeof summarize>; flags: ReturnType<typeof flagCounts> } {
  const rec = campaignRecords(manifest, c.id, { withResults: true });
  return { summary: summarize(rec.experiments, rec.runs, { seed: rec.seed, ...(rec.groupBy ? { groupBy: rec.groupBy } : {}) }), flags: flagCounts(rec.runs) };
}

export function renderSummary(rows: ReturnType<typeof summarize>): string {
  const body = rows.map((r) => [
    r.name,
    r.metric,
    `${r.stats?.n ?? 0}/${r.runs}`,
    num(r.stats?.mean),
    num(r.stats?.std),
    pct(r.stats?.cv),
    r.stats?.ci95 ? `[${num(r.stats.ci95.low)}, ${num(r.stats.ci95.high)}]` : '—',
  ]);
  const reasons = [...new Map(rows.filter((r) => r.reason !== null).map((r) => [r.metric, r.reason as string])).entries()];
  const why = reasons.map(([metric, reason]) => `  ${metric}: ${reason}`).join('\n');
  const pooled = [...new Map(rows.filter((r) => r.pooledGpuModels.length > 1).map((r) => [r.experimentId, r.pooledGpuModels])).values()];
  const notes = [...intervalNotes(rows.map((r) => ({ metric: r.metric, d: r.stats }))), ...pooled.map((ms) => `pooled across GPU models ${ms.join(', ')} (placement.group_by: none)`)].map((n) => `\nnote: ${n}`).join('');
  return `\n${table(['experiment', 'metric', 'n', 'mean', 'std', 'CV', `95% CI (${CI_METHOD_LABEL.t})`], body, [2, 3, 4, 5])}${
    reasons.length ? `\nnot measured on this host:\n${why}` : ''
  }${notes}\n(— = not measured, or too few cycles for an interval; \`lem results show ID --all\` lists every metric)`;
}
