// Over 300 lines on purpose: the Runtime is one closure over its services, serve pools, handles and timers, and dispatchExec's timeout/abort/kill logic shares that state.
/**
 * The docker runtime: each backend a campaign needs runs as one long-lived, idle service container
 * (from docker-compose.yml), kept for the whole campaign; every experiment is a request to the
 * persistent worker exec'd in it (`python3 -m lem_worker serve`, serve.ts), or with per_run a
 * `docker exec` of `python3 -m lem_worker run CONFIG --out DIR`; the containers are removed at the end.
 *
 * The service containers themselves (labels, mounts, GPUs, adoption, health, restarts, removal)
 * are services.ts's job; this file is the Runtime around them: a run's exec and its log, its
 * timeout and abort, and what became of it.
 *
 *  - Each exec is wrapped so its in-container pid (and start time) is known; timeouts, aborts and
 *    reap() kill exactly that process tree inside the container (there is no exec-kill API).
 *  - HF_TOKEN goes only into each exec's environment, never into a handle or a failure reason.
 *  - A container that dies mid-run (docker kill, OOM) fails that run with the reason; the next
 *    dispatch starts the service again.
 */
import { chmodSync, createWriteStream, type WriteStream } from 'node:fs';
import type { Duplex } from 'node:stream';
import type Docker from 'dockerode';
import type { BackendName } from '../../contract/backends.js';
import { attemptTokenPrefix, isCampaignToken, type DispatchOutcome, type LiveWorker, type Runtime, type RunSpec, type RuntimeContext, type WorkerToolResult } from '../types.js';
import { workerMode, type WorkerMode } from '../serve-protocol.js';
import { describeError, statusCode } from './engine.js';
import { execCapture, killInContainer, PID_WRAPPER, pidLineFilter, processAlive, waitExecExit, workersInContainer } from './exec.js';
import { containerDeath, decodeHandle, encodeHandle, type Handle } from './handles.js';
import { DockerServe, runOnDockerServe } from './serve.js';
import { createServices, LABELS, ServicesLostError, type ServiceOptions, type ServiceState } from './services.js';

export { decodeHandle, encodeHandle } from './handles.js';

export { DEFAULT_SERVICES, LABELS } from './services.js';

export interface DockerRuntimeOptions extends ServiceOptions {
  /** SIGTERM → SIGKILL grace when stopping a worker. Default 5000 ms. */
  killGraceMs?: number;
  /** The command a run execs; default python3 -m lem_worker run CONFIG --out DIR. (Tests, benchmarks.) Implies per_run. */
  workerCommand?: (spec: RunSpec) => string[];
  /** persistent (default; $LEM_WORKER=per_run switches): one `lem_worker serve` per service container. */
  worker?: WorkerMode;
  /** A remote engine's run files: put in before the exec, fetched after it (pool.ts, transfer.ts). */
  transfer?: RunTransfer;
}

export interface RunTransfer {
  before(d: Docker, containerId: string, spec: RunSpec, user: string | undefined): Promise<void>;
  after(d: Docker, containerId: string, spec: RunSpec): Promise<void>;
}

/** Why a run was stopped from outside (timeout, abort). */
interface Stop {
  reason: string;
  timedOut: boolean;
}

async function closeLog(stream: WriteStream): Promise<void> {
  await new Promise<void>((resolve) => {
    if (stream.closed) resolve();
    else stream.end(() => resolve());
  });
}

export function createDockerRuntime(opts: DockerRuntimeOptions = {}): Runtime & {
  /** The service containers this session holds: service → container id (tests, doctor). */
  serviceContainers(): Record<string, string>;
} {
  const killGraceMs = opts.killGraceMs ?? 5_000;
  const services = createServices(opts);
  const { redact, fail } = services;
  // A remote engine (run files transferred per run) keeps the per-run exec path for now.
  const persistent = workerMode(opts.worker) === 'persistent' && !opts.workerCommand && !opts.transfer;
  /** The persistent worker of each backend's service container. */
  const serves = new Map<BackendName, DockerServe>();
  /** Backends whose image has no `lem_worker serve` (an older worker): a process per run there. */
  const noServe = new Set<BackendName>();
  let coldStart = false;

  async function dispatch(spec: RunSpec, signal: AbortSignal, onStarted: (handle: string) => void): Promise<DispatchOutcome> {
    if (signal.aborted) return { exitCode: null, timedOut: false, failureReason: 'interrupted' };
    let state: ServiceState;
    try {
      state = await services.readyForRun(spec.backend);
    } catch (err) {
      if (err instanceof ServicesLostError) throw err; // the campaign stops (runner marks this run failed)
      return { exitCode: null, timedOut: false, failureReason: redact(err instanceof Error ? err.message : String(err)) };
    }
    state.used = true;
    services.grantRunDir(spec.outDir);
    if (persistent && !noServe.has(spec.backend)) {
      const outcome = await dispatchServe(spec, state, signal, onStarted);
      if (outcome !== null) return outcome;
    }
    return dispatchExec(spec, state, signal, onStarted);
  }

  /** A run as a request to the service's persistent worker; null when the image has none (then per run). */
  async function dispatchServe(spec: RunSpec, state: ServiceState, signal: AbortSignal, onStarted: (handle: string) => void): Promise<DispatchOutcome | null> {
    // A worker that died while idle (a crash between runs) never takes the run: once more on a fresh one.
    for (let attempt = 0; attempt < 2; attempt++) {
      const outcome = await serveOnce(spec, state, signal, onStarted);
      if (outcome !== 'not_taken') return outcome;
    }
    return { exitCode: null, timedOut: false, failureReason: `the persistent worker in ${state.containerName} died before it took the run, twice` };
  }

  async function serveOnce(spec: RunSpec, state: ServiceState, signal: AbortSignal, onStarted: (handle: string) => void): Promise<DispatchOutcome | null | 'not_taken'> {
    const d = services.docker();
    let serve = serves.get(spec.backend);
    if (serve && (!serve.alive || serve.containerId !== state.containerId || serve.startedAt !== state.startedAt)) {
      await serve.close(killGraceMs);
      serves.delete(spec.backend);
      serve = undefined;
    }
    if (!serve) {
      const user = services.execUser();
      const started = await DockerServe.start(d, state.containerId, state.startedAt, spec.backend, services.workerEnv(spec.backend), user);
      if (typeof started === 'string') {
        if (/invalid choice: 'serve'/.test(started)) {
          noServe.add(spec.backend);
          opts.log?.(`service ${state.name} (${state.containerName}): its worker has no persistent mode (an older image); a process per run`);
          return null;
        }
        return { exitCode: null, timedOut: false, failureReason: redact(`${started} in service ${state.name} (${state.containerName})`) };
      }
      serve = started;
      serves.set(spec.backend, serve);
    }
    const ready = serve.ready;
    if (ready?.start_ticks) onStarted(encodeHandle({ containerId: state.containerId, pid: ready.pid, startTime: ready.start_ticks }));
    const outcome = await runOnDockerServe(serve, spec, coldStart, signal, killGraceMs, (bySignal) => containerDeath(d, state.containerId, state, bySignal));
    if (!serve.alive) serves.delete(spec.backend);
    if (outcome === null) return 'not_taken';
    return { ...outcome, failureReason: outcome.failureReason === null ? null : redact(outcome.failureReason) };
  }

  async function dispatchExec(spec: RunSpec, state: ServiceState, signal: AbortSignal, onStarted: (handle: string) => void): Promise<DispatchOutcome> {
    const d = services.docker();
    const containerId = state.containerId;
    const logStream = createWriteStream(spec.logPath, { flags: 'a', mode: 0o644 });
    logStream.on('error', () => undefined);
    logStream.once('open', () => {
      try {
        chmodSync(spec.logPath, 0o644); // one mode for all run files, whatever the umask
      } catch {
        // the log still works; its mode is cosmetic
      }
    });
    const worker = opts.workerCommand?.(spec) ?? ['python3', '-m', 'lem_worker', 'run', spec.configPath, '--out', spec.outDir, '--attempt-token', spec.attemptToken];
    const user = services.execUser();

    let exec: Docker.Exec;
    let stream: Duplex;
    try {
      await opts.transfer?.before(d, containerId, spec, user);
      exec = await d.getContainer(containerId).exec({
        Cmd: ['sh', '-c', PID_WRAPPER, 'lem-run', ...worker],
        AttachStdout: true,
        AttachStderr: true,
        Tty: false,
        Env: [...services.workerEnv(spec.backend), `LEM_ATTEMPT_TOKEN=${spec.attemptToken}`],
        WorkingDir: spec.outDir,
        ...(user ? { User: user } : {}),
      });
      stream = await exec.start({ hijack: false, stdin: false, Detach: false });
    } catch (err) {
      await closeLog(logStream);
      return { exitCode: null, timedOut: false, failureReason: redact(`cannot exec the worker in service ${state.name} (${state.containerName}): ${describeError(err)}`) };
    }

    let handle: Handle | null = null;
    let stop: Stop | null = null;
    let pendingKill = false;
    let killTimer: NodeJS.Timeout | undefined;
    let timeoutTimer: NodeJS.Timeout | undefined;
    let hardTimer: NodeJS.Timeout | undefined;
    const kills: Promise<unknown>[] = [];

    const killNow = (h: Handle): void => {
      kills.push(killInContainer(d, h.containerId, h.pid, h.startTime, 15).catch(() => undefined));
      killTimer = setTimeout(() => {
        kills.push(killInContainer(d, h.containerId, h.pid, h.startTime, 9).catch(() => undefined));
        // If even SIGKILL does not end the stream (engine trouble), stop waiting.
        hardTimer = setTimeout(() => stream.destroy(), 15_000);
      }, killGraceMs);
    };
    const requestStop = (reason: string, timedOut: boolean): void => {
      if (stop) return;
      stop = { reason, timedOut };
      if (handle) killNow(handle);
      else pendingKill = true;
    };

    const stdout = pidLineFilter(logStream, (pid, startTime) => {
      handle = { containerId, pid, startTime };
      onStarted(encodeHandle(handle));
      if (pendingKill) killNow(handle);
    });
    d.modem.demuxStream(stream, stdout, logStream);

    const onAbort = (): void => requestStop('interrupted', false);
    if (spec.timeoutS !== null) {
      timeoutTimer = setTimeout(() => requestStop(`timed out after ${spec.timeoutS}s; the worker was killed`, true), spec.timeoutS * 1000);
    }
    signal.addEventListener('abort', onAbort, { once: true });

    await new Promise<void>((resolve) => {
      stream.once('end', () => resolve());
      stream.once('close', () => resolve());
      stream.once('error', () => resolve());
    });
    clearTimeout(timeoutTimer);
    clearTimeout(killTimer);
    clearTimeout(hardTimer);
    signal.removeEventListener('abort', onAbort);
    await new Promise<void>((resolve) => stdout.end(() => resolve()));

    let exitCode: number | null = null;
    try {
      exitCode = await waitExecExit(exec);
    } catch {
      exitCode = null;
    }
    await Promise.all(kills);

    const died = await containerDeath(d, containerId, state, stop === null && (exitCode === null || exitCode >= 128));

    // A stopped run: make sure the process is really gone before the next run starts.
    if (stop !== null && handle !== null && died === null) {
      const h: Handle = handle;
      if (await processAlive(d, h.containerId, h.pid, h.startTime).catch(() => false)) {
        await killInContainer(d, h.containerId, h.pid, h.startTime, 9).catch(() => undefined);
      }
    }
    const fetchError = await (opts.transfer?.after(d, containerId, spec) ?? Promise.resolve()).then(
      () => null,
      (err: unknown) => `cannot fetch the run's files from ${state.containerName}: ${describeError(err)}`,
    );
    await closeLog(logStream);

    const stopped = stop as Stop | null;
    if (stopped) return { exitCode, timedOut: stopped.timedOut, failureReason: redact(stopped.reason) };
    if (died) return { exitCode, timedOut: false, failureReason: redact(died), failureKind: 'container_gone' };
    if (fetchError) return { exitCode, timedOut: false, failureReason: redact(fetchError) };
    if (exitCode === null) {
      return { exitCode: null, timedOut: false, failureReason: `the engine reported no exit code for the worker in ${state.containerName}` };
    }
    if (exitCode === 137) {
      return {
        exitCode,
        timedOut: false,
        failureReason: `the worker was killed by SIGKILL (exit 137) inside ${state.containerName}; usually the out-of-memory killer (see \`dmesg\` on the engine host)`,
        failureKind: 'killed',
      };
    }
    return { exitCode, timedOut: false, failureReason: null };
  }

  /**
   * Finds (or stops) the campaign's workers in every running container labelled for the campaign —
   * the service containers this session holds and any left by a killed orchestrator — by the
   * attempt token on their command line, so a worker whose handle was never recorded is found too.
   */
  async function campaignWorkers(campaignId: string, mode: 'find' | 'stop'): Promise<LiveWorker[]> {
    const d = services.docker();
    let containers: Docker.ContainerInfo[];
    try {
      containers = await d.listContainers({ filters: { label: [`${LABELS.campaign}=${campaignId}`], status: ['running'] } });
    } catch (err) {
      throw fail(`cannot list the containers of campaign ${campaignId} to look for leftover workers: ${describeError(err)}`);
    }
    const out: LiveWorker[] = [];
    for (const c of containers) {
      const name = (c.Names[0] ?? c.Id.slice(0, 12)).replace(/^\//, '');
      let found: Awaited<ReturnType<typeof workersInContainer>>;
      try {
        found = await workersInContainer(d, c.Id, attemptTokenPrefix(campaignId), mode, killGraceMs / 1000);
      } catch (err) {
        if (statusCode(err) === 404 || statusCode(err) === 409) continue; // gone or stopped meanwhile
        throw fail(`cannot look for leftover workers in ${name}: ${describeError(err)}`);
      }
      const mine = found.workers.filter((w) => isCampaignToken(w.token, campaignId));
      out.push(...mine.map((w) => ({ token: w.token, pid: w.pid, where: `pid ${w.pid} in ${name}` })));
      if (mode === 'stop' && found.result.exitCode !== 0 && found.result.exitCode !== null) {
        throw fail(`could not stop leftover worker(s) ${mine.map((w) => w.token).join(', ')} in ${name}: ${found.result.stderr.trim() || `exit ${found.result.exitCode}`}`);
      }
    }
    return out;
  }

  return {
    name: 'docker',

    findWorkers(campaignId: string) {
      return campaignWorkers(campaignId, 'find');
    },

    stopWorkers(campaignId: string) {
      return campaignWorkers(campaignId, 'stop');
    },

    serviceContainers() {
      return services.containers();
    },

    async prepare(backends: readonly BackendName[], c: RuntimeContext): Promise<void> {
      coldStart = c.forceColdStart;
      await services.prepare(backends, c);
    },

    dispatch,

    async reap(handle: string): Promise<void> {
      const h = decodeHandle(handle);
      if (!h) return;
      const d = services.docker();
      try {
        const info = await d.getContainer(h.containerId).inspect();
        if (!info.State.Running) return; // the process died with its container
      } catch (err) {
        if (statusCode(err) === 404) return;
        throw fail(`cannot inspect container ${h.containerId.slice(0, 12)} to stop a leftover worker: ${describeError(err)}`);
      }
      const r = await killInContainer(d, h.containerId, h.pid, h.startTime, 9);
      if (r.exitCode !== 0 && (await processAlive(d, h.containerId, h.pid, h.startTime))) {
        throw fail(`could not stop the leftover worker (pid ${h.pid}) in container ${h.containerId.slice(0, 12)}: ${r.stderr.trim() || `exit ${r.exitCode}`}`);
      }
    },

    async shutdown({ keepServices, campaignId }: { keepServices: boolean; campaignId?: string }): Promise<void> {
      const all = [...serves.values()];
      serves.clear();
      await Promise.all(all.map((s) => s.close(killGraceMs)));
      await services.release({ keepServices, ...(campaignId !== undefined ? { campaignId } : {}) });
    },

    probe: (backend: BackendName, configs: readonly unknown[]) => services.probe(backend, configs),

    /** A worker tool command (thermal probe, calibrate) as an exec in the backend's service. */
    async workerTool(backend: BackendName, args: readonly string[], timeoutS: number): Promise<WorkerToolResult> {
      const state = await services.readyForRun(backend);
      const user = services.execUser();
      return execCapture(services.docker(), state.containerId, ['python3', '-m', 'lem_worker', ...args], {
        env: services.workerEnv(false),
        timeoutMs: timeoutS * 1000,
        ...(user ? { user } : {}),
      });
    },
  };
}
