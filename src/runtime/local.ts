/**
 * The local runtime: the worker runs as a subprocess of the orchestrator. The embedded default
 * where no Docker engine is present, and what runs on a GPU box without Docker.
 *
 * By default one persistent worker per backend (`lem_worker serve`, local-serve.ts) runs every run
 * of that backend, keeping its loaded engine between runs; LEM_WORKER=per_run starts a process per
 * run instead (local-per-run.ts). Either way the worker writes the run's output straight into the
 * run's log file, so the log is complete even if lem itself is killed.
 */
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { BackendName } from '../contract/backends.js';
import { probeLocal } from './local-probe.js';
import { LemError } from '../util/errors.js';
import { workerDir } from '../util/paths.js';
import { dispatchPerRun, reapPid } from './local-per-run.js';
import { runOnServe, ServeProcess, serveStateDir } from './local-serve.js';
import { serveToken, workerMode, type WorkerMode } from './serve-protocol.js';
import { attemptTokenPrefix, isCampaignToken, type DispatchOutcome, type LiveWorker, type Runtime, type RunSpec, type RuntimeContext, type WorkerToolResult } from './types.js';

export interface LocalRuntimeOptions {
  /** Python interpreter; default $LEM_PYTHON or python3. */
  python?: string;
  /** Extra environment for the worker. */
  env?: Record<string, string>;
  /** persistent (default; $LEM_WORKER=per_run switches): one `lem_worker serve` per backend. */
  worker?: WorkerMode;
}

const KILL_GRACE_MS = 5_000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * The attempt a process is running, or null (gone, zombie, unreadable, not a worker, an idle
 * persistent worker): a per-run worker's `--attempt-token` argument, or the token a persistent
 * worker (`lem_worker serve --state-dir DIR`) wrote in DIR/current.json for its run in flight.
 */
function tokenOf(pid: number): string | null {
  let args: string[];
  try {
    args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return null;
  }
  const i = args.indexOf('--attempt-token');
  if (i >= 0) return i + 1 < args.length ? (args[i + 1] ?? null) : null;
  return args.includes('lem_worker') ? serveToken(args, pid) : null;
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

/** serving-stop: SIGTERM, then SIGKILL after 30 s, per server (manage.stop_server). */
const SERVING_STOP_TIMEOUT_S = 90;

export function createLocalRuntime(opts: LocalRuntimeOptions = {}): Runtime {
  const python = opts.python ?? process.env['LEM_PYTHON'] ?? 'python3';
  const pythonPath = [workerDir(), process.env['PYTHONPATH']].filter(Boolean).join(':');
  const mode = workerMode(opts.worker);
  const workerEnv: NodeJS.ProcessEnv = { ...process.env, ...opts.env, PYTHONPATH: pythonPath, PYTHONUNBUFFERED: '1' };
  const serves = new Map<BackendName, ServeProcess>();
  let ctx: RuntimeContext | null = null;
  let started = 0;
  let ranVllm = false;

  /** The backend's persistent worker, started (or replaced: gone, or force_cold_start) as needed. */
  async function serveFor(spec: RunSpec): Promise<{ serve: ServeProcess; cold: boolean } | { error: string }> {
    const cold = ctx?.forceColdStart === true;
    let serve = serves.get(spec.backend);
    if (serve && (!serve.alive || (cold && serve.runs > 0))) {
      await serve.close(KILL_GRACE_MS);
      serves.delete(spec.backend);
      serve = undefined;
    }
    if (!serve) {
      const root = join(ctx?.workspaceRoot ?? dirname(spec.outDir), '.serve');
      serve = new ServeProcess(spec.backend, serveStateDir(root, spec.backend, ++started), {
        python,
        env: workerEnv,
      });
      const why = await serve.ready();
      if (why !== null) return { error: why };
      serves.set(spec.backend, serve);
    }
    return { serve, cold };
  }

  /** `python3 -m lem_worker ARGS` as a subprocess, with the workers' environment. */
  function runTool(args: readonly string[], timeoutS: number): Promise<WorkerToolResult> {
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
  }

  async function dispatchServe(spec: RunSpec, signal: AbortSignal, onStarted: (handle: string) => void): Promise<DispatchOutcome> {
    if (signal.aborted) return { exitCode: null, timedOut: false, failureReason: 'interrupted' };
    // A worker that died while idle (a crash between runs) never takes the run: once more on a fresh one.
    for (let attempt = 0; ; attempt++) {
      const got = await serveFor(spec);
      if ('error' in got) return { exitCode: null, timedOut: false, failureReason: got.error };
      onStarted(`serve:${got.serve.pid}:${spec.attemptToken}`);
      const outcome = await runOnServe(got.serve, spec, got.cold, signal, KILL_GRACE_MS);
      if (!got.serve.alive) serves.delete(spec.backend);
      if (outcome !== null) return outcome;
      if (attempt > 0) return { exitCode: null, timedOut: false, failureReason: `the persistent worker (pid ${got.serve.pid}) died before it took the run, twice` };
    }
  }

  return {
    name: 'local',
    async prepare(_backends, c: RuntimeContext) {
      // Workers start at their backend's first run (a failed start then fails that run, not the campaign).
      ctx = c;
    },

    dispatch(spec: RunSpec, signal: AbortSignal, onStarted: (handle: string) => void): Promise<DispatchOutcome> {
      if (spec.backend === 'vllm') ranVllm = true;
      return mode === 'persistent' ? dispatchServe(spec, signal, onStarted) : dispatchPerRun({ python, env: workerEnv }, spec, signal, onStarted);
    },

    async reap(handle: string) {
      const s = /^serve:(\d+):(\S+)$/.exec(handle);
      if (s) {
        // A persistent worker: only while it still runs that attempt (it may serve others later).
        const w: LiveWorker = { pid: Number(s[1]), token: s[2] ?? '', where: `pid ${s[1]}` };
        if (tokenOf(w.pid) === w.token) await stopLocalWorkers([w], 0);
        return;
      }
      return reapPid(handle);
    },

    async findWorkers(campaignId: string) {
      return scanLocalWorkers(campaignId);
    },

    async stopWorkers(campaignId: string) {
      const found = scanLocalWorkers(campaignId);
      await stopLocalWorkers(found, KILL_GRACE_MS);
      return found;
    },

    async shutdown({ keepServices }: { keepServices: boolean }) {
      const all = [...serves.values()];
      serves.clear();
      await Promise.all(all.map((s) => s.close(KILL_GRACE_MS)));
      // `vllm serve` processes started for vllm.mode: server outlive their worker (reused across runs): the
      // campaign's end (or interrupt) stops them, unless keep_services keeps them warm for the next campaign.
      if (ranVllm && !keepServices) await runTool(['serving-stop'], SERVING_STOP_TIMEOUT_S);
    },

    probe(_backend, configs) {
      return probeLocal(python, { ...process.env, ...opts.env, PYTHONPATH: pythonPath }, configs);
    },

    /** A worker tool command (thermal probe, calibrate) as a subprocess. */
    workerTool(_backend, args: readonly string[], timeoutS: number): Promise<WorkerToolResult> {
      return runTool(args, timeoutS);
    },
  };
}
