/** `lem results import PATH… [--name NAME] [--json]`: other tools' results as an imported campaign. */
import { importsOf } from '../../manifest/imports.js';
import { importResults } from '../../campaign/import.js';
import { displayPath } from '../../results/import/paths.js';
import { systemClock } from '../../util/clock.js';
import { EXIT_OK } from '../../util/errors.js';
import { printJson, type CliContext } from '../context.js';

export function resultsImport(ctx: CliContext, paths: readonly string[], o: { name?: string; json?: boolean }): number {
  const m = ctx.openManifest();
  try {
    const r = importResults(m, paths, { ...(o.name !== undefined ? { name: o.name } : {}), clock: systemClock });
    if (o.json) {
      printJson(ctx, 'results.import', {
        campaign: r.campaignId,
        name: r.name,
        experiments: r.experiments,
        runs: r.runs,
        flagged_runs: r.flaggedRuns,
        imported: r.imported.map((f) => ({ path: f.path, source_tool: f.tool, source_version: f.version, format: f.format, sha256: f.sha256, runs: f.runs, flagged_runs: f.flagged })),
        already_imported: r.alreadyImported.map((f) => ({ path: f.path, sha256: f.sha256, campaign: f.campaignId })),
        skipped: r.skipped,
        warnings: r.warnings,
      });
      return EXIT_OK;
    }
    for (const s of r.skipped) ctx.err(`note: skipped ${displayPath(s.path)}: ${s.reason}`);
    for (const w of r.warnings) ctx.err(`warning: ${w}`);
    for (const f of r.imported) {
      ctx.out(`imported ${displayPath(f.path)} (${f.tool}${f.version ? ` ${f.version}` : ''}, ${f.format}): ${f.runs} run(s)${f.flagged ? `, ${f.flagged} flagged` : ''}`);
    }
    for (const f of r.alreadyImported) ctx.out(`already imported ${displayPath(f.path)} (sha256 ${f.sha256.slice(0, 12)}…) into ${f.campaignId}; skipped`);
    if (r.campaignId === null) ctx.out('nothing new to import.');
    else ctx.out(`campaign ${r.campaignId}: ${r.experiments} experiment(s), ${r.runs} run(s)${r.flaggedRuns ? `, ${r.flaggedRuns} flagged` : ''}. Next: lem results show ${r.campaignId}`);
    return EXIT_OK;
  } finally {
    m.close();
  }
}

/** The provenance of an imported campaign (empty for a campaign lem ran), snake_case for --json. */
export function importSources(ctx: CliContext, campaignId: string): Array<{ source_tool: string; source_version: string | null; path: string; format: string; sha256: string; runs: number; imported_at: string }> {
  const m = ctx.openManifest('read');
  try {
    return importsOf(m, campaignId).map((s) => ({ source_tool: s.tool, source_version: s.version, path: s.path, format: s.format, sha256: s.sha256, runs: s.runs, imported_at: s.importedAt }));
  } finally {
    m.close();
  }
}
