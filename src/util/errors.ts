/**
 * Errors the user can act on. The CLI prints `message` as one paragraph and exits with `exitCode`;
 * anything else reaching the top is a bug in lem and is reported as such (exit 70, crash log).
 */
export const EXIT_OK = 0;
export const EXIT_FAILED_RUNS = 1;
/** Bad input: a config or campaign file, a command-line argument, an unusable path. */
export const EXIT_USAGE = 2;
/** The disk (or the filesystem of the state directory) is full; the campaign stopped cleanly. */
export const EXIT_DISK_FULL = 3;
/** The manifest database is damaged (not SQLite, truncated, corrupt pages). */
export const EXIT_STATE_DAMAGED = 4;
/** A bug in lem (an unexpected exception); a crash log is written. */
export const EXIT_INTERNAL = 70;
export const EXIT_INTERRUPTED = 130;

export class LemError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT_USAGE,
  ) {
    super(message);
    this.name = 'LemError';
  }
}

export interface SourceLocation {
  file: string;
  line: number;
  column: number;
}

/** One problem in a config or campaign file (what `config validate --json` lists in errors[]). */
export interface ConfigProblem {
  file: string;
  line: number | null;
  column: number | null;
  field: string | null;
  message: string;
}

export function formatProblem(p: ConfigProblem): string {
  const where = p.line !== null ? `${p.file}:${p.line}:${p.column ?? 1}` : p.file;
  return `${where}: ${p.field ? `field '${p.field}': ` : ''}${p.message}`;
}

/**
 * A problem in a config or campaign file, located at file:line:column and a field path. It may
 * carry further problems found in the same pass (`problems` lists all of them, this one first).
 */
export class ConfigError extends LemError {
  readonly problems: readonly ConfigProblem[];
  constructor(
    readonly location: SourceLocation | { file: string; line?: undefined; column?: undefined },
    readonly field: string | null,
    readonly problem: string,
    more: readonly ConfigProblem[] = [],
  ) {
    const first: ConfigProblem = { file: location.file, line: location.line ?? null, column: location.column ?? null, field, message: problem };
    const tail = more.length > 0 ? ` (${more.length} more problem${more.length > 1 ? 's' : ''} after this one; \`lem config validate\` lists them all.)` : '';
    super(`${formatProblem(first)}${tail}`, EXIT_USAGE);
    this.name = 'ConfigError';
    this.problems = [first, ...more];
  }

  /** One error carrying every problem of several (at least one). */
  static merge(errors: readonly ConfigError[]): ConfigError {
    const all = errors.flatMap((e) => e.problems);
    const [first, ...rest] = all;
    if (!first) throw new Error('ConfigError.merge needs at least one error');
    const loc = first.line !== null ? { file: first.file, line: first.line, column: first.column ?? 1 } : { file: first.file };
    return new ConfigError(loc, first.field, first.message, rest);
  }
}

/** True for the errno codes of a full disk or an exceeded quota. */
export function isDiskFull(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT' || code === 'SQLITE_FULL';
}

/** The disk holding `path` is full: what lem stops with (exit 3), resumable once space is freed. */
export class DiskFullError extends LemError {
  constructor(
    readonly path: string,
    detail?: string,
  ) {
    super(
      `disk full at ${path}${detail ? ` (${detail})` : ''}: lem stopped cleanly (a run in flight is recorded as interrupted). Free some space, then \`lem campaign resume\` continues where it stopped.`,
      EXIT_DISK_FULL,
    );
    this.name = 'DiskFullError';
  }
}
