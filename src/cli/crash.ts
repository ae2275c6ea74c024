/**
 * What the CLI does with an exception: a LemError is the user's to fix (its message, its exit
 * code); a full disk, a damaged or read-only manifest and an unusable path are mapped to one
 * clear paragraph; anything else is a bug in lem: one line on stderr saying where to report it,
 * and the stack in a crash log file (never a raw stack on the terminal). Exit 70.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { asDamaged } from '../manifest/db.js';
import { DiskFullError, EXIT_INTERNAL, EXIT_STATE_DAMAGED, EXIT_USAGE, isDiskFull, LemError } from '../util/errors.js';
import { packageRoot } from '../util/paths.js';

/** Where to report a bug: package.json `bugs` (url or string), else the README. */
export function issuesUrl(): string {
  try {
    const pkg = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { bugs?: string | { url?: string } };
    const url = typeof pkg.bugs === 'string' ? pkg.bugs : pkg.bugs?.url;
    if (url) return url;
  } catch {
    // fall through to the README's pointer
  }
  return "the project's issue tracker (see README.md, 'Reporting a bug')";
}

/** Writes the crash log under `<state>/crash/`, or $TMPDIR when the state directory is not writable. */
export function writeCrashLog(stateDir: string, e: unknown, argv: readonly string[], now: Date = new Date()): string | null {
  const name = `lem-crash-${now.toISOString().replace(/[:.]/g, '-')}-${process.pid}.log`;
  const body = [
    `lem internal error at ${now.toISOString()}`,
    `argv: ${JSON.stringify(argv)}`,
    `node: ${process.version} ${process.platform}-${process.arch}`,
    '',
    e instanceof Error ? (e.stack ?? `${e.name}: ${e.message}`) : String(e),
    ...(e instanceof Error && e.cause !== undefined ? ['', `cause: ${e.cause instanceof Error ? (e.cause.stack ?? e.cause.message) : String(e.cause)}`] : []),
    '',
  ].join('\n');
  for (const dir of [join(stateDir, 'crash'), tmpdir()]) {
    try {
      mkdirSync(dir, { recursive: true });
      const path = join(dir, name);
      writeFileSync(path, body, { mode: 0o644 });
      return path;
    } catch {
      // next place
    }
  }
  return null;
}

interface SqliteLike {
  code: string;
  message: string;
}
function sqliteCode(e: unknown): SqliteLike | null {
  if (e instanceof Error && e.name === 'SqliteError' && typeof (e as { code?: unknown }).code === 'string') return { code: (e as unknown as SqliteLike).code, message: e.message };
  return null;
}

/** A user-facing LemError for an exception lem can explain, or null for a bug. */
export function explain(e: unknown, where: { stateDir: string; dbPath: string }): LemError | null {
  if (e instanceof LemError) return e;
  if (isDiskFull(e)) {
    const path = (e as { path?: unknown }).path;
    return new DiskFullError(typeof path === 'string' ? path : where.stateDir);
  }
  const sq = sqliteCode(e);
  if (sq) {
    const code = sq.code.split('_').slice(0, 2).join('_');
    const damaged = asDamaged(e, where.dbPath);
    if (damaged) return damaged;
    if (code === 'SQLITE_READONLY' || code === 'SQLITE_CANTOPEN' || code === 'SQLITE_PERM') {
      return new LemError(`the manifest ${where.dbPath} cannot be written (${sq.message}); this command changes it, so it needs a writable state directory: fix its permissions or use --state DIR.`, EXIT_USAGE);
    }
    if (code === 'SQLITE_BUSY') return new LemError(`the manifest ${where.dbPath} is locked by another lem process (${sq.message}); try again when it is done.`, EXIT_USAGE);
    if (code === 'SQLITE_IOERR') return new LemError(`reading or writing the manifest ${where.dbPath} failed with an I/O error (${sq.message}); check the disk, then \`lem state check\`.`, EXIT_STATE_DAMAGED);
  }
  // A file lem was told to read or write is not usable: the user's to fix, not a crash.
  const fsError = e as NodeJS.ErrnoException;
  if (fsError && typeof fsError.code === 'string' && typeof fsError.path === 'string') {
    const why = fsError.code === 'EACCES' || fsError.code === 'EPERM' || fsError.code === 'EROFS' ? 'not writable (or not readable) by this user' : fsError.message.replace(/^[A-Z]+: /, '').split(',')[0];
    return new LemError(`cannot ${fsError.syscall ?? 'use'} ${fsError.path}: ${fsError.code} (${why}).`, EXIT_USAGE);
  }
  return null;
}

/** Prints the one-line crash report and returns exit 70. */
export function reportCrash(e: unknown, stateDir: string, argv: readonly string[], err: (line: string) => void): number {
  const log = writeCrashLog(stateDir, e, argv);
  const message = (e instanceof Error ? e.message : String(e)).split('\n')[0] ?? '';
  err(`lem: internal error: ${message} — this is a bug; please report it at ${issuesUrl()}${log ? ` with the log at ${log}` : ' (the crash log could not be written)'}.`);
  return EXIT_INTERNAL;
}
