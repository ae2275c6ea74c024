/** What every command needs: where state lives, how to print, and the manifest. */
import { isAbsolute, join, resolve } from 'node:path';
import { Manifest } from '../manifest/manifest.js';
import { systemClock } from '../util/clock.js';
import { jsonDocument } from './json.js';

export interface GlobalOptions {
  state?: string;
  db?: string;
}

export interface CliContext {
  stateDir: string;
  dbPath: string;
  out: (line: string) => void;
  err: (line: string) => void;
  /** 'read' for commands that only read (opened read-only where the state directory is not writable). */
  openManifest(mode?: 'read' | 'write'): Manifest;
}

export function makeContext(g: GlobalOptions): CliContext {
  const stateDir = resolve(g.state ?? process.env['LEM_STATE_DIR'] ?? 'state');
  const dbPath = g.db ? (isAbsolute(g.db) ? g.db : resolve(g.db)) : join(stateDir, 'lem.db');
  return {
    stateDir,
    dbPath,
    out: (line) => process.stdout.write(`${line}\n`),
    err: (line) => process.stderr.write(`${line}\n`),
    openManifest: (mode = 'write') => Manifest.open(dbPath, systemClock, { mode }),
  };
}

/**
 * Prints one `--json` document: `{ schema: "lem.<command>/1", ...body }`, keys in snake_case
 * (see json.ts). `command` is the command path joined by dots, e.g. `results.compare`.
 */
export function printJson(ctx: CliContext, command: string, body: Record<string, unknown>): void {
  ctx.out(JSON.stringify(jsonDocument(command, body), null, 2));
}
