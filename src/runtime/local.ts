/**
 * The local runtime: the worker runs as a subprocess of the orchestrator. The embedded default
 * where no Docker engine is present, and what runs on a GPU box without Docker.
 *
 * The worker writes its stdout/stderr straight into the run's log file (an inherited file
 * descriptor, not a pipe through lem), so the log is complete even if lem itself is killed.
 */
import { execFile, spawn } from 'node:child_process';
import { probeLocal } from './local-probe.js';
import { closeSync, existsSync, fchmodSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { LemError } from '../util/errors.js';
import { workerDir } from '../util/paths.js';
import { attemptTokenPrefix, isCampaignToken, type DispatchOutcome, type LiveWorker, type Runtime, type RunSpec, type WorkerToolResult } from './types.js';

export interface LocalRuntimeOptions {
  /** Python interpreter; default $LEM_PYTHON or python3. */
  python?: string;
  /** Extra environment for the worker. */
  env?: Record<string, string>;
}

const KILL_GRACE_MS = 5_000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The `--attempt-token` argument of a process, or null (gone, zombie, unreadable, not a worker). */
function tokenOf(pid: number): string | null {
  let args: string[];
  try {
    args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return null;
  }
  const i = args.indexOf('--attempt-token');
  return i >= 0 && i + 1 < args.length ? (args[i + 1] ?? null) : null;
}

/** This host's live workers of a campaign, found by the attempt token on their command line. */
export function scanLocalWorkers(campaignId: string): LiveWorker[] {
  const prefix = attemptTokenPrefix(campaignId);
  const out: LiveWorker[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    if (pid === process.pid) continue;
    const token = tokenOf(pid);
    if (token !== null && token.startsWith(prefix) && isCampaignToken(token, campaignId)) out.push({ token, pid, where: `pid ${pid}` });
  }
  return out;
}

/** Signals a worker's process group (it was started detached, as a group leader), else the process. */
function signalWorker(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
    return;
  } catch {
    // not a group leader (started by something else): the process alone
  }
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/** SIGTERM, then SIGKILL after the grace, then wait until every one is gone. */
export async function stopLocalWorkers(workers: readonly LiveWorker[], graceMs: number): Promise<void> {
  const alive = (w: LiveWorker): boolean => tokenOf(w.pid) === w.token;
  for (const w of workers) signalWorker(w.pid, 'SIGTERM');
  const termDeadline = Date.now() + graceMs;
  while (workers.some(alive) && Date.now() < termDeadline) await sleep(50);
  for (const w of workers.filter(alive)) signalWorker(w.pid, 'SIGKILL');
  const killDeadline = Date.now() + 10_000;
  while (workers.some(alive) && Date.now() < killDeadline) await sleep(50);
  const left = workers.filter(alive);
  if (left.length > 0) {
    throw new LemError(`could not stop leftover worker(s) ${left.map((w) => `${w.token} (${w.where})`).join(', ')}; stop them by hand before resuming.`);
  }
}

export function createLocalRuntime(opts: LocalRuntimeOptions = {}): Runtime {
  const python = opts.python ?? process.env['LEM_PYTHON'] ?? 'python3';
  const pythonPath = [workerDir(), process.env['PYTHONPATH']].filter(Boolean).join(':');

  return {
    name: 'local',
    async prepare() {
      // Nothing to start: each run is its own process.
    },

    dispatch(spec: RunSpec, signal: AbortSignal, onStarted: (handle: string) => void): Promise<DispatchOutcome> {
      const log = openSync(spec.logPath, 'a', 0o644);
      fchmodSync(log, 0o644); // one mode for all run files, whatever the umask
      return new Promise<DispatchOutcome>((resolve) => {
        let stopReason: { reason: string; timedOut: boolean } | null = null;
        let killTimer: NodeJS.Timeout | undefined;
        let timeoutTimer: NodeJS.Timeout | undefined;
        const child = spawn(python, ['-m', 'lem_worker', 'run', spec.configPath, '--out', spec.outDir, '--attempt-token', spec.attemptToken], {
          // LEM_LOCK_DIR (the device locks) comes through from lem's own environment.
          env: { ...process.env, ...opts.env, PYTHONPATH: pythonPath, PYTHONUNBUFFERED: '1', LEM_ATTEMPT_TOKEN: spec.attemptToken },
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
    },

    async reap(handle: string) {
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
    },

    async findWorkers(campaignId: string) {
      return scanLocalWorkers(campaignId);
    },

    async stopWorkers(campaignId: string) {
      const found = scanLocalWorkers(campaignId);
      await stopLocalWorkers(found, KILL_GRACE_MS);
      return found;
    },

    async shutdown() {
      // Nothing long-running to stop.
    },

    probe(_backend, configs) {
      return probeLocal(python, { ...process.env, ...opts.env, PYTHONPATH: pythonPath }, configs);
    },

    /** A worker tool command (thermal probe, calibrate) as a subprocess. */
    workerTool(_backend, args: readonly string[], timeoutS: number): Promise<WorkerToolResult> {
      return new Promise((resolve) => {
        execFile(
          python,
          ['-m', 'lem_worker', ...args],
          { env: { ...process.env, ...opts.env, PYTHONPATH: pythonPath, PYTHONUNBUFFERED: '1' }, timeout: Math.round(timeoutS * 1000), maxBuffer: 4 * 1024 * 1024 },
          (err, stdout, stderr) => {
            const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
            resolve({ exitCode: code, stdout, stderr: err && code === null ? `${stderr}${err.message}` : stderr });
          },
        );
      });
    },
  };
}
