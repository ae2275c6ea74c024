/** `lem campaign status | list`: read-only and fast; imports nothing but the manifest (and the owner check). */
import { liveness } from '../../campaign/liveness.js';
import { EXIT_OK } from '../../util/errors.js';
import { printJson, type CliContext } from '../context.js';
import { table } from '../format.js';

export function campaignStatus(ctx: CliContext, id: string | undefined, opts: { json?: boolean; experiments?: boolean }): number {
  const manifest = ctx.openManifest('read');
  try {
    const c = id ? manifest.findCampaign(id) : manifest.latestCampaign();
    if (!c) {
      if (opts.json) printJson(ctx, 'campaign.status', { id: null });
      else ctx.out('no campaigns yet: start one with `lem campaign run FILE`.');
      return EXIT_OK;
    }
    const counts = manifest.counts(c.id);
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    // Per-experiment rows only for campaigns small enough to read; the totals answer for huge grids.
    const perExperiment = opts.experiments || total <= 2_000 ? manifest.countsByExperiment(c.id) : null;
    const problems = manifest.recentProblems(c.id, 5);
    const byKind = manifest.problemsByKind(c.id);
    const live = liveness(c);
    if (opts.json) {
      printJson(ctx, 'campaign.status', {
        id: c.id,
        name: c.name,
        status: live.status,
        owner_pid: c.ownerPid,
        dead_owner_pid: live.deadOwnerPid,
        created_at: c.createdAt,
        updated_at: c.updatedAt,
        settings: c.settings,
        runs: { total, ...counts },
        experiments: perExperiment?.map((e) => ({ id: e.experimentId, name: e.name, runs: e.counts })) ?? null,
        problems_by_kind: byKind.map((k) => ({ kind: k.kind ?? 'unknown', status: k.status, runs: k.n })),
        recent_problems: problems.map((r) => ({ position: r.position, experiment_id: r.experimentId, cycle: r.cycle, attempt: r.attempt, status: r.status, failure_kind: r.failureKind, error: r.error, ended_at: r.endedAt })),
      });
      return EXIT_OK;
    }
    const owner = live.deadOwnerPid !== null ? ` (its process ${live.deadOwnerPid} is gone; resume with: lem campaign resume ${c.id})` : c.ownerPid ? ` by pid ${c.ownerPid}` : '';
    ctx.out(`${c.id}  (${c.name}) — ${live.status}${owner}`);
    ctx.out(`runs: ${total} total · ${counts.succeeded} succeeded · ${counts.failed} failed · ${counts.interrupted} interrupted · ${counts.running} running · ${counts.pending} pending`);
    ctx.out(`settings: ${c.settings.cycles} cycles, ${c.settings.structure}, seed ${c.settings.seed}, thermal gap ${typeof c.settings.thermal_gap === 'number' ? `${c.settings.thermal_gap}s` : JSON.stringify(c.settings.thermal_gap)}, runtime ${c.settings.runtime}, retries ${c.settings.retries}`);
    ctx.out(`updated ${c.updatedAt} · manifest ${ctx.dbPath}`);
    if (perExperiment) {
      ctx.out('');
      ctx.out(
        table(
          ['experiment', 'succeeded', 'failed', 'interrupted', 'left'],
          perExperiment.map((e) => [e.name, String(e.counts.succeeded), String(e.counts.failed), String(e.counts.interrupted), String(e.counts.pending + e.counts.running)]),
          [1, 2, 3, 4],
        ),
      );
    }
    if (byKind.length) {
      ctx.out('\nproblems by kind:');
      ctx.out(table(['kind', 'status', 'runs'], byKind.map((k) => [k.kind ?? 'unknown (recorded before kinds)', k.status, String(k.n)]), [2]));
    }
    if (problems.length) {
      ctx.out('\nrecent problems:');
      for (const r of problems) ctx.out(`  run ${r.position} (${r.experimentId}, cycle ${r.cycle}, attempt ${r.attempt}) ${r.status}${r.failureKind ? ` [${r.failureKind}]` : ''}: ${r.error ?? 'no reason recorded'}`);
    }
    return EXIT_OK;
  } finally {
    manifest.close();
  }
}

export function campaignList(ctx: CliContext, opts: { json?: boolean }): number {
  const manifest = ctx.openManifest('read');
  try {
    const rows = manifest.campaigns().map((c) => ({ c, counts: manifest.counts(c.id), live: liveness(c) }));
    if (opts.json) {
      printJson(ctx, 'campaign.list', { campaigns: rows.map(({ c, counts, live }) => ({ id: c.id, name: c.name, status: live.status, dead_owner_pid: live.deadOwnerPid, created_at: c.createdAt, runs: counts })) });
      return EXIT_OK;
    }
    if (rows.length === 0) {
      ctx.out('no campaigns yet: start one with `lem campaign run FILE`.');
      return EXIT_OK;
    }
    ctx.out(table(['id', 'status', 'succeeded', 'failed', 'left', 'created'], rows.map(({ c, counts, live }) => [c.id, live.deadOwnerPid !== null ? `interrupted (pid ${live.deadOwnerPid} gone)` : live.status, String(counts.succeeded), String(counts.failed), String(counts.pending + counts.interrupted + counts.running), c.createdAt]), [2, 3, 4]));
    return EXIT_OK;
  } finally {
    manifest.close();
  }
}
