/** Shared by the test/slurm files: the CLI against a test cluster, campaign files, manifest and run-directory readers. */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { lemAsync, tempDir, type CliResult } from '../helpers/cli.js';
import type { Cluster } from './cluster.js';

export type CliRun = CliResult;

/** The CLI against the test cluster, asynchronously; `onStderr` may signal it. */
export function lem(cluster: Cluster, args: string[], env: Record<string, string> = {}, onStderr?: (all: string, kill: (sig: NodeJS.Signals) => void) => void): Promise<CliRun> {
  return lemAsync(args, { ...cluster.env, ...env }, onStderr);
}

export function campaign(name: string, body: string): { state: string; file: string } {
  const dir = tempDir('lem-slurm-test-');
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, `campaign_name: ${name}\n${body}thermal_gap: 0\nretries: 0\nruntime: slurm\nslurm:\n  allocation: { gres: "gpu:4", time: "10:00" }\n  python: /usr/bin/python3\n`);
  return { state: join(dir, 'state'), file };
}

export interface RunRow {
  position: number;
  status: string;
  attempt: number;
  exit_code: number | null;
  error: string | null;
  handle: string | null;
  experiment_id: string;
  cycle: number;
}

export function manifest(state: string): { runs: RunRow[]; events: Array<{ position: number | null; kind: string; detail_json: string }> } {
  const db = new Database(join(state, 'lem.db'), { readonly: true });
  try {
    return {
      runs: db.prepare('SELECT position, status, attempt, exit_code, error, handle, experiment_id, cycle FROM runs ORDER BY position').all() as RunRow[],
      events: db.prepare('SELECT position, kind, detail_json FROM events ORDER BY seq').all() as Array<{ position: number | null; kind: string; detail_json: string }>,
    };
  } finally {
    db.close();
  }
}

/** Every run directory's files of a campaign: result window, placement (Slurm job, step, GPUs). */
export function attempts(state: string, id: string): Array<{ dir: string; files: string[]; placement: { env: Record<string, string>; gpus: unknown }; window: { started_at: string; ended_at: string } | null }> {
  const root = join(state, 'runs', id);
  return readdirSync(root, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .flatMap((e) => readdirSync(join(root, e.name)).map((a) => join(root, e.name, a)))
    .map((dir) => {
      const files = readdirSync(dir).sort();
      // A step killed with lem has no placement.json (nobody read its stdout).
      const placement = existsSync(join(dir, 'placement.json')) ? (JSON.parse(readFileSync(join(dir, 'placement.json'), 'utf8')) as { env: Record<string, string>; gpus: unknown }) : { env: {}, gpus: null };
      const result = existsSync(join(dir, 'result.json')) ? (JSON.parse(readFileSync(join(dir, 'result.json'), 'utf8')) as { window?: { started_at: string; ended_at: string } }) : null;
      return { dir, files, placement, window: result?.window ?? null };
    });
}

/** The worker.log texts of a campaign's run directories so far. */
export function attemptLogs(state: string, id: string): string[] {
  const root = join(state, 'runs', id);
  if (!existsSync(root)) return [];
  return readdirSync(root, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .flatMap((e) => readdirSync(join(root, e.name)).map((a) => join(root, e.name, a, 'worker.log')))
    .filter((f) => existsSync(f))
    .map((f) => readFileSync(f, 'utf8'));
}

export const idOf = (stderr: string, name: string): string => new RegExp(`campaign (${name}-\\S+):`).exec(stderr)?.[1] ?? '';
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

