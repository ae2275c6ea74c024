/**
 * Use case: import results other tools measured as an imported campaign in the manifest.
 * Reading and mapping is src/results/import; recording is src/manifest/imports.ts. A source file
 * already imported (same SHA-256) is skipped, so importing twice is a no-op.
 */
import { createHash } from 'node:crypto';
import { importedChecksums, recordImportedCampaign, type ImportProvenance } from '../manifest/imports.js';
import type { Manifest } from '../manifest/manifest.js';
import { assemble } from '../results/import/assemble.js';
import { displayPath } from '../results/import/paths.js';
import { readImportSources } from '../results/import/read.js';
import type { ImportedFile } from '../results/import/types.js';
import type { Clock } from '../util/clock.js';
import { LemError } from '../util/errors.js';

export interface ImportOutcome {
  campaignId: string | null;
  name: string | null;
  imported: Array<{ path: string; tool: string; version: string | null; format: string; sha256: string; runs: number; flagged: number }>;
  alreadyImported: Array<{ path: string; sha256: string; campaignId: string }>;
  skipped: Array<{ path: string; reason: string }>;
  warnings: string[];
  experiments: number;
  runs: number;
  flaggedRuns: number;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

function defaultName(files: readonly ImportedFile[]): string {
  const tools = [...new Set(files.map((f) => f.tool))];
  return `import-${tools.length === 1 ? (tools[0] as string).replace(/_/g, '-') : 'mixed'}`;
}

export function importResults(m: Manifest, paths: readonly string[], opts: { name?: string; clock: Clock }): ImportOutcome {
  if (opts.name !== undefined && !NAME.test(opts.name)) throw new LemError(`--name '${opts.name}': use letters, digits, dot, dash and underscore only, starting with a letter or digit.`);
  const read = readImportSources(paths);
  const known = importedChecksums(m, read.files.map((f) => f.sha256));
  const seen = new Set<string>();
  const fresh: ImportedFile[] = [];
  const alreadyImported: ImportOutcome['alreadyImported'] = [];
  for (const f of read.files) {
    const prior = known.get(f.sha256);
    if (prior) alreadyImported.push({ path: f.path, sha256: f.sha256, campaignId: prior });
    else if (!seen.has(f.sha256)) {
      seen.add(f.sha256);
      fresh.push(f);
    }
  }
  const warnings = fresh.flatMap((f) => f.warnings.map((w) => `${displayPath(f.path)}: ${w}`));
  const imported = fresh.map((f) => ({ path: f.path, tool: f.tool, version: f.version, format: f.format, sha256: f.sha256, runs: f.runs.length, flagged: f.runs.filter((r) => r.flags.length > 0).length }));
  const base = { imported, alreadyImported, skipped: read.skipped, warnings };
  if (fresh.length === 0) return { campaignId: null, name: null, ...base, experiments: 0, runs: 0, flaggedRuns: 0 };

  const a = assemble(fresh);
  const name = opts.name ?? defaultName(fresh);
  const now = opts.clock.now();
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  const digest = createHash('sha256').update(fresh.map((f) => f.sha256).join('\n')).digest('hex').slice(0, 4);
  const id = `${name}-${stamp}-${digest}`;
  const sources: ImportProvenance[] = fresh.map((f) => ({ sha256: f.sha256, tool: f.tool, version: f.version, path: f.path, format: f.format, companions: f.companions, runs: f.runs.length }));
  recordImportedCampaign(m, {
    id,
    name,
    sourcePath: fresh[0]?.path ?? '',
    notes: [`imported from ${fresh.length} file(s): ${[...new Set(fresh.map((f) => f.tool))].join(', ')}`],
    experiments: a.experiments,
    runs: a.runs.map((r) => ({
      experimentId: r.experimentId,
      cycle: r.cycle,
      status: r.status,
      startedAt: r.startedAt,
      endedAt: r.endedAt,
      resultPath: r.file.path,
      metrics: r.metrics,
      flags: r.flags,
      error: r.status === 'failed' ? `the source reports this run as failed (${r.origin})` : null,
      detail: { source: r.file.path, tool: r.file.tool, origin: r.origin, unmeasured: r.unmeasured },
    })),
    sources,
    at: now.toISOString(),
  });
  return { campaignId: id, name, ...base, experiments: a.experiments.length, runs: a.runs.length, flaggedRuns: a.runs.filter((r) => r.flags.length > 0).length };
}
