/** What every command needs: where state lives, how to print, and the manifest. */
import { isAbsolute, join, resolve } from 'node:path';
import { Manifest } from '../manifest/manifest.js';
import { systemClock } from '../util/clock.js';

export interface GlobalOptions {
  state?: string;
  db?: string;
}

export interface CliContext {
  stateDir: string;
  dbPath: string;
  out: (line: string) => void;
  err: (line: string) => void;
  openManifest(): Manifest;
}

export function makeContext(g: GlobalOptions): CliContext {
  const stateDir = resolve(g.state ?? process.env['LEM_STATE_DIR'] ?? 'state');
  const dbPath = g.db ? (isAbsolute(g.db) ? g.db : resolve(g.db)) : join(stateDir, 'lem.db');
  return {
    stateDir,
    dbPath,
    out: (line) => process.stdout.write(`${line}\n`),
    err: (line) => process.stderr.write(`${line}\n`),
    openManifest: () => Manifest.open(dbPath, systemClock),
  };
}

export function printJson(ctx: CliContext, value: unknown): void {
  ctx.out(JSON.stringify(value, null, 2));
}
