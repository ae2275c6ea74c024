/**
 * The local runtime's per-run worker path (LEM_WORKER=per_run): every run is its own
 * `python3 -m lem_worker run` subprocess, carrying its attempt token on its command line.
 *
 * The worker writes its stdout/stderr straight into the run's log file (an inherited file
 * descriptor, not a pipe through lem), so the log is complete even if lem itself is killed.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, fchmodSync, openSync, readFileSync } from 'node:fs';
import type { DispatchOutcome, RunSpec } from './types.js';

export interface PerRunWorker {
  python: string;
  env: NodeJS.ProcessEnv;
}

const KILL_GRACE_MS = 5_000;

/** The per-run path (LEM_WORKER=per_run): the worker is its own subprocess. */
export function dispatchPerRun(w: PerRunWorker, spec: RunSpec, signal: AbortSignal, onStarted: (handle: string) => void): Promise<DispatchOutcome> {
  const { python, env } = w;
  const log = openSync(spec.logPath, 'a', 0o644);
  fchmodSync(log, 0o644); // one mode for all run files, whatever the umask
  return new Promise<DispatchOutcome>((resolve) => {
    let stopReason: { reason: string; timedOut: boolean } | null = null;
    let killTimer: NodeJS.Timeout | undefined;
    let timeoutTimer: NodeJS.Timeout | undefined;
    const child = spawn(python, ['-m', 'lem_worker', 'run', spec.configPath, '--out', spec.outDir, '--attempt-token', spec.attemptToken], {
      // LEM_LOCK_DIR (the device locks) comes through from lem's own environment.
      env: { ...env, LEM_ATTEMPT_TOKEN: spec.attemptToken },
      stdio: ['ignore', log, log],
      // Own process group: a terminal Ctrl-C reaches lem, which then stops the worker itself.
      detached: true,
    });
    const stop = (reason: string, timedOut: boolean): void => {
      if (stopReason) return;
      stopReason = { reason, timedOut };
      child.kill('SIGTERM');
      killTimer = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
    };
    const onAbort = (): void => stop('interrupted', false);
    const finish = (outcome: DispatchOutcome): void => {
      clearTimeout(killTimer);
      clearTimeout(timeoutTimer);
      signal.removeEventListener('abort', onAbort);
      closeSync(log);
      resolve(outcome);
    };
    child.once('error', (err) => {
      finish({ exitCode: null, timedOut: false, failureReason: `the worker could not start (${python}): ${err.message}` });
    });
    child.once('spawn', () => {
      if (child.pid !== undefined) onStarted(`pid:${child.pid}`);
    });
    child.once('exit', (code, sig) => {
      if (stopReason) {
        finish({ exitCode: code, timedOut: stopReason.timedOut, failureReason: stopReason.reason });
      } else if (code === null) {
        finish({ exitCode: null, timedOut: false, failureReason: `the worker was killed by ${sig ?? 'a signal'}`, failureKind: 'killed' });
      } else {
        finish({ exitCode: code, timedOut: false, failureReason: null });
      }
    });
    if (spec.timeoutS !== null) {
      timeoutTimer = setTimeout(() => stop(`timed out after ${spec.timeoutS}s; the worker was killed`, true), spec.timeoutS * 1000);
    }
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** Stops a per-run worker left behind, by its `pid:N` handle. */
export async function reapPid(handle: string): Promise<void> {
  const m = /^pid:(\d+)$/.exec(handle);
  if (!m) return;
  const pid = Number(m[1]);
  let cmdline: string;
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return; // already gone
  }
  if (!cmdline.includes('lem_worker')) return; // the pid now belongs to something else
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return; // exited meanwhile
  }
  // Wait until it is really gone, so its work never overlaps the next measured run.
  for (let i = 0; i < 100 && existsSync(`/proc/${pid}/cmdline`) && readFileSync(`/proc/${pid}/cmdline`, 'utf8') !== ''; i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
}
