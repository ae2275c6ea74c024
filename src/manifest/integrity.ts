/**
 * Whether the result files behind the manifest are still there and unchanged: a succeeded run's
 * result.json must exist, and match the size (quick) or SHA-256 (full) recorded when it was ingested.
 */
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import type { RunRow } from './manifest.js';

export interface ResultFileProblem {
  position: number;
  experimentId: string;
  cycle: number;
  path: string;
  problem: 'missing' | 'changed';
}

export interface ResultFileCheck {
  /** Succeeded runs whose result file was checked. */
  checked: number;
  missing: ResultFileProblem[];
  changed: ResultFileProblem[];
}

/** `full`: hash every file (what `lem state check` does); otherwise existence and size only. */
export function checkResultFiles(runs: readonly RunRow[], opts: { full?: boolean } = {}): ResultFileCheck {
  const out: ResultFileCheck = { checked: 0, missing: [], changed: [] };
  for (const r of runs) {
    if (r.status !== 'succeeded' || r.resultPath === null) continue;
    out.checked++;
    const at = { position: r.position, experimentId: r.experimentId, cycle: r.cycle, path: r.resultPath };
    let size: number;
    try {
      const st = statSync(r.resultPath);
      if (!st.isFile()) throw new Error('not a file');
      size = st.size;
    } catch {
      out.missing.push({ ...at, problem: 'missing' });
      continue;
    }
    if (r.resultBytes !== null && size !== r.resultBytes) {
      out.changed.push({ ...at, problem: 'changed' });
      continue;
    }
    if (opts.full && r.resultSha256 !== null) {
      let sha: string;
      try {
        sha = createHash('sha256').update(readFileSync(r.resultPath)).digest('hex');
      } catch {
        out.missing.push({ ...at, problem: 'missing' });
        continue;
      }
      if (sha !== r.resultSha256) out.changed.push({ ...at, problem: 'changed' });
    }
  }
  return out;
}

/** One paragraph for the user ("2 results missing: …"), or null when every file is in place. */
export function describeResultFileCheck(c: ResultFileCheck, limit = 5): string | null {
  const parts: string[] = [];
  const list = (xs: readonly ResultFileProblem[]): string =>
    xs
      .slice(0, limit)
      .map((x) => `run ${x.position} (${x.experimentId}, cycle ${x.cycle}) ${x.path}`)
      .join('; ') + (xs.length > limit ? `; and ${xs.length - limit} more` : '');
  if (c.missing.length) parts.push(`${c.missing.length} result${c.missing.length > 1 ? 's' : ''} missing: ${list(c.missing)}`);
  if (c.changed.length) parts.push(`${c.changed.length} result${c.changed.length > 1 ? 's' : ''} changed since ingest: ${list(c.changed)}`);
  if (!parts.length) return null;
  return `${parts.join('. ')}. Their figures come from the manifest's copy of the metrics, not from a result file you can check; \`lem state check\` lists every such run.`;
}
