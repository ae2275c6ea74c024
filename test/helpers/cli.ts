/** Helpers for tests that drive the built `lem` CLI as a user would. */
import { execFileSync, spawnSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '..', '..');
export const LEM = join(ROOT, 'bin', 'lem.js');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function lem(args: readonly string[], opts: { cwd?: string; env?: Record<string, string> } = {}): CliResult {
  const r = spawnSync(process.execPath, [LEM, ...args], {
    cwd: opts.cwd ?? ROOT,
    env: { ...process.env, ...opts.env },
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/**
 * Runs the CLI asynchronously (the caller's event loop keeps running: engine event streams, timers);
 * `onStderr` sees all stderr so far after each chunk and may signal the CLI.
 */
export function lemAsync(args: readonly string[], env: Record<string, string> = {}, onStderr?: (all: string, kill: (sig: NodeJS.Signals) => void) => void): Promise<CliResult> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [LEM, ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      onStderr?.(stderr, (sig) => child.kill(sig));
    });
    child.once('exit', (code) => done({ code, stdout, stderr }));
  });
}

export function lemSpawn(args: readonly string[], opts: { cwd?: string } = {}): ChildProcess {
  return spawn(process.execPath, [LEM, ...args], { cwd: opts.cwd ?? ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
}

export function tempDir(prefix = 'lem-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A run-start progress line (`[3/8] …`) on the CLI's stderr. */
export const RUN_STARTED = /^\[\d+\/\d+\]/m;

/**
 * Runs the CLI and kill -9s it `delayMs` after `armed(stderr)` first holds (never, when delayMs is
 * null: then it runs to its end). The crash tests' one way of killing lem at a chosen moment.
 */
export function lemKillAt(
  args: readonly string[],
  env: Record<string, string>,
  delayMs: number | null,
  armed: (stderr: string) => boolean,
): Promise<{ code: number | null; stderr: string; stdout: string; killed: boolean }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [LEM, ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let stdout = '';
    let killed = false;
    let timer: NodeJS.Timeout | undefined;
    const arm = (): void => {
      if (timer || delayMs === null || !armed(stderr)) return;
      timer = setTimeout(() => (killed = child.kill('SIGKILL')), delayMs);
    };
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      arm();
    });
    arm();
    child.once('exit', (code) => {
      clearTimeout(timer);
      done({ code, stderr, stdout, killed });
    });
  });
}

/** Live lem workers (their command lines) whose arguments name this state directory. */
export function workersUnder(state: string): string[] {
  try {
    return execFileSync('pgrep', ['-af', 'lem_worker'], { encoding: 'utf8' })
      .split('\n')
      .filter((l) => l.includes(state));
  } catch {
    return [];
  }
}
