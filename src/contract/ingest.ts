/**
 * Ingesting a worker's result file: read, decode, validate against the result schema and check it
 * belongs to the run that was dispatched. Never throws; a bad file is a reason, not a crash.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseResult } from './result-parse.js';
import type { Result } from './result.js';

export interface ExpectedRun {
  runId: string;
  experimentId: string;
  cycle: number;
  attempt: number;
}

/**
 * `flags`: the validation gates that fired (the run is kept and marked, never dropped);
 * `sha256`/`bytes`: of the file as read, recorded so that a later change or deletion is noticed.
 */
export type Ingested = { ok: true; result: Result; flags: string[]; sha256: string; bytes: number } | { ok: false; reason: string };

export function ingestResultFile(path: string, expected: ExpectedRun): Ingested {
  let raw: Buffer;
  try {
    raw = readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return { ok: false, reason: code === 'ENOENT' ? `the worker exited 0 but wrote no ${path}` : `cannot read ${path}: ${(e as Error).message}` };
  }
  const text = raw.toString('utf8');
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    return { ok: false, reason: `${path} is not valid JSON: ${(e as Error).message}` };
  }
  const parsed = parseResult(data);
  if (!parsed.ok) return { ok: false, reason: `${path}: ${parsed.reason}` };
  const r = parsed.result;
  const mismatch = (
    [
      ['run_id', r.run_id, expected.runId],
      ['experiment_id', r.experiment_id, expected.experimentId],
      ['cycle', r.cycle, expected.cycle],
      ['attempt', r.attempt, expected.attempt],
    ] as const
  ).find(([, got, want]) => got !== want);
  if (mismatch) {
    return { ok: false, reason: `${path} belongs to another run: ${mismatch[0]} is ${String(mismatch[1])}, expected ${String(mismatch[2])}` };
  }
  return { ok: true, result: r, flags: [...new Set(r.validation.flags.map((f) => f.gate))], sha256: createHash('sha256').update(raw).digest('hex'), bytes: raw.length };
}
