/**
 * Errors the user can act on. The CLI prints `message` as one paragraph and exits with `exitCode`;
 * anything else reaching the top is a bug in lem and is reported as such.
 */
export const EXIT_OK = 0;
export const EXIT_FAILED_RUNS = 1;
export const EXIT_USAGE = 2;
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

/** A problem in a config or campaign file, located at file:line:column and a field path. */
export class ConfigError extends LemError {
  constructor(
    readonly location: SourceLocation | { file: string; line?: undefined; column?: undefined },
    readonly field: string | null,
    readonly problem: string,
  ) {
    const where = location.line !== undefined ? `${location.file}:${location.line}:${location.column}` : location.file;
    super(`${where}: ${field ? `field '${field}': ` : ''}${problem}`, EXIT_USAGE);
    this.name = 'ConfigError';
  }
}
