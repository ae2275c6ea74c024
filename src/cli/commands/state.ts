/** `lem state check` and `lem state backup`: the state directory's health, and a safe copy of the manifest. */
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { quickCheck } from '../../manifest/db.js';
import { checkResultFiles, type ResultFileProblem } from '../../manifest/integrity.js';
import type { Manifest } from '../../manifest/manifest.js';
import { EXIT_OK, EXIT_STATE_DAMAGED, EXIT_USAGE, LemError } from '../../util/errors.js';
import { printJson, type CliContext } from '../context.js';

interface FileEntry {
  campaign_id: string;
  position: number;
  experiment_id: string;
  cycle: number;
  path: string;
}
interface CheckReport {
  ok: boolean;
  manifest: { path: string; ok: boolean; problem: string | null };
  campaigns: number;
  results: { checked: number; missing: FileEntry[]; changed: FileEntry[] };
}

const entry = (campaignId: string, x: ResultFileProblem): FileEntry => ({ campaign_id: campaignId, position: x.position, experiment_id: x.experimentId, cycle: x.cycle, path: x.path });

/**
 * Full integrity check of the manifest, and every succeeded run's result file against the
 * checksum recorded at ingest. Exit 0 when all is well, 4 when anything is damaged or missing.
 */
export function stateCheck(ctx: CliContext, opts: { json?: boolean }): number {
  if (!existsSync(ctx.dbPath)) throw new LemError(`there is no manifest at ${ctx.dbPath}; nothing to check (use --state DIR or --db PATH for another one).`, EXIT_USAGE);
  const report: CheckReport = { ok: true, manifest: { path: ctx.dbPath, ok: true, problem: null }, campaigns: 0, results: { checked: 0, missing: [], changed: [] } };
  let manifest: Manifest | null = null;
  try {
    manifest = ctx.openManifest('read');
    quickCheck(manifest.db, ctx.dbPath, true);
    for (const c of manifest.campaigns()) {
      report.campaigns++;
      const r = checkResultFiles(manifest.runs(c.id, ['succeeded']), { full: true });
      report.results.checked += r.checked;
      report.results.missing.push(...r.missing.map((x) => entry(c.id, x)));
      report.results.changed.push(...r.changed.map((x) => entry(c.id, x)));
    }
  } catch (e) {
    if (!(e instanceof LemError) || e.exitCode !== EXIT_STATE_DAMAGED) throw e;
    report.manifest = { path: ctx.dbPath, ok: false, problem: e.message };
  } finally {
    manifest?.close();
  }
  report.ok = report.manifest.ok && report.results.missing.length === 0 && report.results.changed.length === 0;
  if (opts.json) {
    printJson(ctx, 'state.check', { ...report });
    return report.ok ? EXIT_OK : EXIT_STATE_DAMAGED;
  }
  if (!report.manifest.ok) ctx.out(`manifest: DAMAGED — ${report.manifest.problem ?? ''}`);
  else ctx.out(`manifest ${ctx.dbPath}: ok (integrity check passed), ${report.campaigns} campaign(s)`);
  if (report.manifest.ok) {
    const { missing, changed, checked } = report.results;
    ctx.out(`result files: ${checked} checked, ${missing.length} missing, ${changed.length} changed since ingest`);
    for (const x of [...missing.map((m) => ['missing', m] as const), ...changed.map((m) => ['changed', m] as const)]) {
      ctx.out(`  ${x[0]}: ${x[1].campaign_id} run ${x[1].position} (${x[1].experiment_id}, cycle ${x[1].cycle}) ${x[1].path}`);
    }
  }
  return report.ok ? EXIT_OK : EXIT_STATE_DAMAGED;
}

/** A consistent copy of the manifest through SQLite's online backup API (safe while a campaign runs). */
export async function stateBackup(ctx: CliContext, opts: { out?: string; json?: boolean }): Promise<number> {
  if (!existsSync(ctx.dbPath)) throw new LemError(`there is no manifest at ${ctx.dbPath} to back up.`, EXIT_USAGE);
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*$/, '').replace('T', '-');
  const out = resolve(opts.out ?? join(ctx.stateDir, 'backups', `lem-${stamp}.db`));
  if (existsSync(out)) throw new LemError(`${out} already exists; give another --out path (a backup never overwrites a file).`, EXIT_USAGE);
  mkdirSync(dirname(out), { recursive: true });
  const manifest = ctx.openManifest('read');
  let pages: number;
  try {
    quickCheck(manifest.db, ctx.dbPath);
    pages = (await manifest.db.backup(out)).totalPages;
  } finally {
    manifest.close();
  }
  const copy = new Database(out, { readonly: true, fileMustExist: true });
  try {
    quickCheck(copy, out);
  } finally {
    copy.close();
  }
  if (opts.json) printJson(ctx, 'state.backup', { backup: out, source: ctx.dbPath, pages });
  else ctx.out(`backed up ${ctx.dbPath} to ${out} (${pages} pages, integrity check passed). To restore: stop lem, rm -f ${ctx.dbPath}-wal ${ctx.dbPath}-shm, then cp ${out} ${ctx.dbPath}`);
  return EXIT_OK;
}
