/** Free space on the filesystem holding a path (for stopping cleanly before a disk fills up). */
import { mkdirSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Bytes available to this user on the filesystem of `path`, or null when it cannot be told. */
export function freeBytes(path: string): number | null {
  try {
    const s = statfsSync(path);
    return Number(s.bavail) * Number(s.bsize);
  } catch {
    return null;
  }
}

/**
 * The free space below which a campaign does not start another run: 16 MiB, or $LEM_MIN_FREE_BYTES
 * (0 turns the check off).
 */
export function minFreeBytes(env: NodeJS.ProcessEnv = process.env): number {
  const v = Number(env['LEM_MIN_FREE_BYTES']);
  return env['LEM_MIN_FREE_BYTES'] !== undefined && Number.isFinite(v) && v >= 0 ? v : 16 * 1024 * 1024;
}

/**
 * Keeps `bytes` of the filesystem in a reserve file, given back when the disk fills up so that the
 * last few manifest writes (recording the interrupted run) still fit. Best effort: returns a
 * release function that does nothing when the reserve could not be made.
 */
export function reserveSpace(dir: string, bytes = 256 * 1024): () => void {
  const path = join(dir, '.lem-disk-reserve');
  try {
    mkdirSync(dir, { recursive: true });
    writeFileSync(path, Buffer.alloc(bytes));
  } catch {
    rmSync(path, { force: true });
    return () => undefined;
  }
  return () => rmSync(path, { force: true });
}
