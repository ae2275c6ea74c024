/**
 * Where Slurm's commands (salloc, srun, squeue, scancel) run: on this host (`login: local`), or on
 * a login node through OpenSSH (`login: ssh://user@host[:port]`, built but not yet tried on a
 * cluster). The one side-effect seam of the Slurm runtime; everything else builds arguments and
 * reads output.
 */
import { execFile, spawn, spawnSync, type ChildProcessByStdio } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';

export interface CommandResult {
  /** Exit code; null when the command was killed or could not start. */
  code: number | null;
  stdout: string;
  stderr: string;
  /** Set when the command could not be started at all (not installed). */
  spawnError?: string;
}

export type StepProcess = ChildProcessByStdio<Writable, Readable, null>;

export interface SlurmShell {
  /** For messages: `this host` or `ssh://user@host`. */
  readonly where: string;
  /** Runs a short command to completion. */
  run(cmd: string, args: readonly string[], timeoutMs?: number): Promise<CommandResult>;
  /** The same, synchronously (process exit hooks cannot wait). */
  runSync(cmd: string, args: readonly string[], timeoutMs?: number): CommandResult;
  /** Starts a long command (srun): stdin and stdout piped, stderr into the given file descriptor. */
  spawn(cmd: string, args: readonly string[], stderrFd: number, env?: Record<string, string>): StepProcess;
}

/** POSIX shell quoting, for commands that travel through ssh as one string. */
export function shellQuote(arg: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

function finish(err: (Error & { code?: unknown }) | null, stdout: string, stderr: string): CommandResult {
  if (!err) return { code: 0, stdout, stderr };
  if (typeof err.code === 'number') return { code: err.code, stdout, stderr };
  if (err.code === 'ENOENT') return { code: null, stdout, stderr, spawnError: err.message };
  return { code: null, stdout, stderr: `${stderr}${err.message}` };
}

/** `local` or an `ssh://` URL (validated by the config schema). */
export function slurmShell(login: string): SlurmShell {
  const ssh = /^ssh:\/\/(?:([^@]+)@)?([^:]+)(?::(\d+))?$/.exec(login);
  const wrap = (cmd: string, args: readonly string[]): [string, string[]] => {
    if (!ssh) return [cmd, [...args]];
    const [, user, host, port] = ssh;
    const target = user ? `${user}@${host}` : (host as string);
    return ['ssh', ['-o', 'BatchMode=yes', '-T', ...(port ? ['-p', port] : []), target, '--', [cmd, ...args].map(shellQuote).join(' ')]];
  };
  return {
    where: ssh ? login : 'this host',
    run(cmd, args, timeoutMs = 30_000) {
      const [file, argv] = wrap(cmd, args);
      return new Promise((resolve) => {
        execFile(file, argv, { timeout: timeoutMs, maxBuffer: 8 * 1024 * 1024 }, (err, stdout, stderr) => resolve(finish(err, stdout, stderr)));
      });
    },
    runSync(cmd, args, timeoutMs = 15_000) {
      const [file, argv] = wrap(cmd, args);
      const r = spawnSync(file, argv, { timeout: timeoutMs, encoding: 'utf8' });
      if (r.error) return { code: null, stdout: r.stdout ?? '', stderr: r.stderr ?? '', spawnError: r.error.message };
      return { code: r.status, stdout: r.stdout, stderr: r.stderr };
    },
    spawn(cmd, args, stderrFd, env) {
      const [file, argv] = wrap(cmd, args);
      // Own process group: a terminal's Ctrl-C reaches lem, which cancels the step itself (scancel).
      const child = spawn(file, argv, { stdio: ['pipe', 'pipe', stderrFd], env: { ...process.env, ...env }, detached: true });
      // stdin and stdout are pipes (asked for above); the type of spawn() with a numeric fd cannot say so.
      return child as StepProcess;
    },
  };
}
