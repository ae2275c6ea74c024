/** Free space on the filesystem holding a path (for stopping cleanly before a disk fills up). */
import { statfsSync } from 'node:fs';

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
