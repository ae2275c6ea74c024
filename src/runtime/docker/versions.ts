/**
 * images/versions.env: the engine and library versions of lem's images, pinned in one place. The
 * compose file interpolates them into build arguments; this reads the file (KEY=VALUE lines, `#`
 * comments) so `lem images build` needs no --env-file, like compose's own `.env`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export const VERSIONS_FILE = join('images', 'versions.env');

export function parseEnvFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (m?.[1] !== undefined) out[m[1]] = (m[2] ?? '').replace(/^(['"])(.*)\1$/, '$2');
  }
  return out;
}

/** The versions file under `projectDir`, or {} when it has none (a compose project of the user's own). */
export function readVersionsEnv(projectDir: string): Record<string, string> {
  const f = join(projectDir, VERSIONS_FILE);
  return existsSync(f) ? parseEnvFile(readFileSync(f, 'utf8')) : {};
}
