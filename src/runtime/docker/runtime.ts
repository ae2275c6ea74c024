/**
 * The docker runtime: each backend a campaign needs runs as one long-lived, idle service container
 * (from docker-compose.yml), kept for the whole campaign; every experiment is a `docker exec` of
 * `python3 -m lem_worker run CONFIG --out DIR` inside it; the containers are removed at the end.
 *
 *  - Containers carry compose labels (project, service, oneoff=False, container-number, …), so
 *    `docker compose ps` lists them, and lem.* labels (lem.campaign, lem.backend, …). prepare()
 *    re-adopts a running container labelled for the same campaign and service, which is how a
 *    resumed campaign reuses its services.
 *  - The workspace root is bind-mounted at the same absolute path, so the runner's paths work
 *    unchanged inside; the Hugging Face cache (HF_HOME, default ~/.cache/huggingface) likewise.
 *    HF_TOKEN goes only into each exec's environment: never into the container config, labels,
 *    logs, handles or error messages.
 *  - Each exec is wrapped so its in-container pid (and start time) is known; timeouts, aborts and
 *    reap() kill exactly that process tree inside the container (there is no exec-kill API).
 *  - A container that dies mid-run (docker kill, OOM) fails that run with the reason; the next
 *    dispatch starts the service again.
 */
import { createHash } from 'node:crypto';
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import type Docker from 'dockerode';
import type { BackendName } from '../../results/schema.js';
import { LemError } from '../../util/errors.js';
import { packageRoot, workerDir } from '../../util/paths.js';
import type { DispatchOutcome, Runtime, RunSpec, RuntimeContext } from '../types.js';
import { defaultComposeFiles, loadCompose, type ComposeProject, type ComposeService } from './compose.js';
import { connectEngine, describeError, engineVersion, statusCode, type Engine } from './engine.js';
import { execCapture, killInContainer, PID_WRAPPER, pidLineFilter, processAlive, waitExecExit } from './exec.js';

export interface DockerRuntimeOptions {
  /** Engine connection; default: as the docker CLI (DOCKER_HOST, context, local socket). */
  engine?: Engine;
  /** Compose files in merge order; default $LEM_COMPOSE_FILE or <lem>/docker-compose.yml. */
  composeFiles?: string[];
  /** Compose project name; default the files' `name:` (lem). */
  projectName?: string;
  /** Backend → compose service; defaults pytorch→pytorch, vllm→vllm, tensorrt→tensorrt, calibration→cpu. */
  services?: Partial<Record<BackendName, string>>;
  /** Shorthand for services.calibration; default $LEM_CALIBRATION_SERVICE or `cpu`. */
  calibrationService?: string;
  /** Host Hugging Face cache; default $HF_HOME or ~/.cache/huggingface. Mounted at the same path. */
  hfHome?: string;
  /** Environment read for HF_TOKEN, HF_HOME, LEM_*; default process.env. */
  env?: NodeJS.ProcessEnv;
  /** GPU request override: 'compose' (default: what the compose file reserves), 'none', 'all', or device ids. */
  gpus?: 'compose' | 'none' | 'all' | string[];
  /** Run docker-init as PID 1 (reaps orphans, forwards signals). Default true. */
  init?: boolean;
  /** User for the worker exec (`uid:gid`); default the host user when the engine is local and lem is not root. */
  user?: string | null;
  /** Bind-mount this checkout's images/worker over the image's copy (worker development). */
  mountWorker?: boolean;
  /** Wait this long for `lem_worker health` after a service starts. Default 180 s. */
  healthTimeoutS?: number;
  /** SIGTERM → SIGKILL grace when stopping a worker. Default 5000 ms. */
  killGraceMs?: number;
  /** The command a run execs; default python3 -m lem_worker run CONFIG --out DIR. (Tests, benchmarks.) */
  workerCommand?: (spec: RunSpec) => string[];
  /** The readiness probe; default python3 -m lem_worker health. */
  healthCommand?: string[];
  /** Progress messages (service started / adopted / restarted / removed). Default: none. */
  log?: (message: string) => void;
}

export const DEFAULT_SERVICES: Record<BackendName, string> = {
  pytorch: 'pytorch',
  vllm: 'vllm',
  tensorrt: 'tensorrt',
  calibration: 'cpu',
};

/** Labels lem puts on its service containers (besides compose's). */
export const LABELS = {
  campaign: 'lem.campaign',
  backend: 'lem.backend',
  service: 'lem.service',
  workspace: 'lem.workspace',
  managed: 'lem.managed-by',
} as const;

const COMPOSE = {
  project: 'com.docker.compose.project',
  service: 'com.docker.compose.service',
  oneoff: 'com.docker.compose.oneoff',
  number: 'com.docker.compose.container-number',
  workingDir: 'com.docker.compose.project.working_dir',
  configFiles: 'com.docker.compose.project.config_files',
  configHash: 'com.docker.compose.config-hash',
  image: 'com.docker.compose.image',
} as const;

/** PID 1 of every service container (under docker-init): idle until stopped; work comes by exec. */
const IDLE_COMMAND = "trap 'exit 0' TERM INT; while :; do sleep 86400 & wait $!; done";

const WORKER_MOUNT = '/opt/lem/worker';

interface ServiceState {
  name: string;
  def: ComposeService;
  backends: Set<BackendName>;
  containerId: string;
  containerName: string;
  /** The container's State.StartedAt when lem last saw it healthy (detects restarts). */
  startedAt: string;
  /** A run has used this container since it (re)started (for forceColdStart). */
  used: boolean;
}

interface Handle {
  containerId: string;
  pid: number;
  startTime: string;
}

/** `docker:<container id>:<pid>:<start time>`: enough for reap() to find and stop an orphan. */
export function encodeHandle(h: Handle): string {
  return `docker:${h.containerId}:${h.pid}:${h.startTime}`;
}

export function decodeHandle(handle: string): Handle | null {
  const m = /^docker:([0-9a-f]{12,64}):(\d+):(\d+)$/.exec(handle);
  if (!m) return null;
  return { containerId: m[1] ?? '', pid: Number(m[2]), startTime: m[3] ?? '' };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function createDockerRuntime(opts: DockerRuntimeOptions = {}): Runtime & {
  /** The service containers this session holds: service → container id (tests, doctor). */
  serviceContainers(): Record<string, string>;
} {
  const env = opts.env ?? process.env;
  const killGraceMs = opts.killGraceMs ?? 5_000;
  const healthTimeoutMs = (opts.healthTimeoutS ?? 180) * 1000;
  const hfToken = env['HF_TOKEN'] || env['HUGGING_FACE_HUB_TOKEN'] || '';
  const serviceMap: Record<BackendName, string> = {
    ...DEFAULT_SERVICES,
    calibration: opts.calibrationService ?? env['LEM_CALIBRATION_SERVICE'] ?? DEFAULT_SERVICES.calibration,
    ...opts.services,
  };

  let engine: Engine | null = opts.engine ?? null;
  let compose: ComposeProject | null = null;
  let ctx: RuntimeContext | null = null;
  const services = new Map<string, ServiceState>();

  const log = (m: string): void => opts.log?.(m);
  /** Never let the token reach a message. */
  const redact = (s: string): string => (hfToken.length >= 4 ? s.split(hfToken).join('***') : s);
  const fail = (message: string): LemError => new LemError(redact(message));

  function getEngine(): Engine {
    engine ??= connectEngine(env);
    return engine;
  }
  function docker(): Docker {
    return getEngine().docker;
  }

  function getCompose(): ComposeProject {
    if (!compose) {
      const files = opts.composeFiles ?? defaultComposeFiles(packageRoot(), env);
      compose = loadCompose(files, { env, ...(opts.projectName ? { projectName: opts.projectName } : {}) });
    }
    return compose;
  }

  function execUser(): string | undefined {
    if (opts.user !== undefined) return opts.user ?? undefined;
    const uid = process.getuid?.();
    const gid = process.getgid?.();
    if (getEngine().endpoint.local && uid !== undefined && uid !== 0 && gid !== undefined) return `${uid}:${gid}`;
    return undefined;
  }

  function hfHome(): string {
    return opts.hfHome ?? env['HF_HOME'] ?? join(homedir(), '.cache', 'huggingface');
  }

  function deviceRequests(def: ComposeService): Docker.DeviceRequest[] {
    const gpus = opts.gpus ?? 'compose';
    if (gpus === 'none') return [];
    if (gpus === 'all') return [{ Driver: 'nvidia', Count: -1, Capabilities: [['gpu']] }];
    if (Array.isArray(gpus)) return [{ Driver: 'nvidia', DeviceIDs: gpus, Capabilities: [['gpu']] }];
    return def.devices.map((d) => ({
      Driver: d.driver,
      ...(d.deviceIds.length > 0 ? { DeviceIDs: d.deviceIds } : { Count: d.count }),
      Capabilities: [d.capabilities],
      Options: d.options,
    }));
  }

  function containerSpec(state: { name: string; def: ComposeService; backends: Set<BackendName> }, c: RuntimeContext, imageId: string, number: number): Docker.ContainerCreateOptions {
    const def = state.def;
    const project = getCompose();
    const hf = hfHome();
    const binds = [`${c.workspaceRoot}:${c.workspaceRoot}`, `${hf}:${hf}`];
    if (opts.mountWorker) binds.push(`${workerDir()}:${WORKER_MOUNT}:ro`);
    const tmpfs: Record<string, string> = {};
    for (const v of def.volumes) {
      if (v.type === 'tmpfs') tmpfs[v.target] = '';
      else binds.push(`${v.source}:${v.target}${v.readOnly ? ':ro' : ''}`);
    }
    const envList = Object.entries({ ...def.environment, HF_HOME: hf, PYTHONUNBUFFERED: '1' }).map(([k, v]) => `${k}=${v}`);
    const hostConfig: Docker.HostConfig = {
      Binds: binds,
      Init: opts.init ?? true,
      DeviceRequests: deviceRequests(def),
      RestartPolicy: { Name: 'no' },
      ...(Object.keys(tmpfs).length > 0 ? { Tmpfs: tmpfs } : {}),
      ...(def.shmSize !== null ? { ShmSize: def.shmSize } : {}),
      ...(def.ipc !== null ? { IpcMode: def.ipc } : {}),
      ...(def.ulimits.length > 0 ? { Ulimits: def.ulimits.map((u) => ({ Name: u.name, Soft: u.soft, Hard: u.hard })) } : {}),
    };
    const config = { Image: def.image, Env: envList, HostConfig: hostConfig };
    const configHash = createHash('sha256').update(JSON.stringify(config)).digest('hex');
    return {
      name: `${project.name}-${state.name}-${number}`,
      Image: def.image,
      Entrypoint: ['sh', '-c', IDLE_COMMAND, 'lem-idle'],
      Cmd: [],
      Env: envList,
      WorkingDir: c.workspaceRoot,
      Labels: {
        [COMPOSE.project]: project.name,
        [COMPOSE.service]: state.name,
        [COMPOSE.oneoff]: 'False',
        [COMPOSE.number]: String(number),
        [COMPOSE.workingDir]: project.workingDir,
        [COMPOSE.configFiles]: project.files.join(','),
        [COMPOSE.configHash]: configHash,
        [COMPOSE.image]: imageId,
        [LABELS.campaign]: c.campaignId,
        [LABELS.backend]: [...state.backends].sort().join(','),
        [LABELS.service]: state.name,
        [LABELS.workspace]: c.workspaceRoot,
        [LABELS.managed]: 'lem',
      },
      HostConfig: hostConfig,
    };
  }

  async function findCampaignContainers(c: RuntimeContext, service: string): Promise<Docker.ContainerInfo[]> {
    return docker().listContainers({
      all: true,
      filters: { label: [`${COMPOSE.project}=${getCompose().name}`, `${COMPOSE.service}=${service}`, `${LABELS.campaign}=${c.campaignId}`] },
    });
  }

  async function nextContainerNumber(service: string): Promise<number> {
    const all = await docker().listContainers({
      all: true,
      filters: { label: [`${COMPOSE.project}=${getCompose().name}`, `${COMPOSE.service}=${service}`] },
    });
    let max = 0;
    for (const c of all) max = Math.max(max, Number(c.Labels[COMPOSE.number] ?? 0) || 0);
    return max + 1;
  }

  async function imageId(def: ComposeService, backends: Set<BackendName>): Promise<string> {
    try {
      const info = await docker().getImage(def.image).inspect();
      return info.Id;
    } catch (err) {
      if (statusCode(err) === 404) {
        const which = [...backends].sort().join(' ');
        throw fail(
          `image ${def.image} (service ${def.name}, backend ${which}) is not on the Docker engine at ${getEngine().endpoint.description}; ` +
            `build it with \`lem images build ${which}\`${def.build ? ` (or \`docker build -f ${def.build.dockerfile} -t ${def.image} ${def.build.context}\`)` : ''}`,
        );
      }
      throw fail(`cannot inspect image ${def.image}: ${describeError(err)}`);
    }
  }

  /** Messages from a failed start, rephrased where the cause is known. */
  function startError(state: ServiceState | { name: string; def: ComposeService }, err: unknown): LemError {
    const msg = describeError(err);
    if (/could not select device driver|nvidia/i.test(msg)) {
      return fail(
        `service ${state.name} reserves GPUs but the Docker engine cannot provide them (${msg}). Install the NVIDIA Container Toolkit on the engine's host ` +
          '(`nvidia-ctk runtime configure --runtime=docker`, then restart dockerd) or run without GPUs via LEM_COMPOSE_FILE=docker-compose.yml:compose/cpu-only.yml; `lem doctor` checks this.',
      );
    }
    return fail(`cannot start service ${state.name} (${state.def.image}): ${msg}`);
  }

  async function containerLogsTail(id: string): Promise<string> {
    try {
      const buf = await docker().getContainer(id).logs({ stdout: true, stderr: true, tail: 20, follow: false });
      // Non-tty logs are multiplexed: drop the 8-byte frame headers.
      const out: string[] = [];
      for (let i = 0; i + 8 <= buf.length; ) {
        const len = buf.readUInt32BE(i + 4);
        out.push(buf.subarray(i + 8, i + 8 + len).toString('utf8'));
        i += 8 + len;
      }
      return redact(out.join('').trim().split('\n').slice(-5).join(' | '));
    } catch {
      return '';
    }
  }

  /** Waits until the worker inside answers its health check. */
  async function waitHealthy(state: ServiceState): Promise<void> {
    const cmd = opts.healthCommand ?? ['python3', '-m', 'lem_worker', 'health'];
    const deadline = Date.now() + healthTimeoutMs;
    let last = '';
    for (let delay = 100; ; delay = Math.min(delay * 2, 1000)) {
      const info = await docker().getContainer(state.containerId).inspect();
      if (!info.State.Running) {
        const tail = await containerLogsTail(state.containerId);
        throw fail(`service ${state.name} (${state.containerName}) stopped while starting: exit code ${info.State.ExitCode}${info.State.Error ? `, ${info.State.Error}` : ''}${tail ? `; last output: ${tail}` : ''}`);
      }
      try {
        const user = execUser();
        const r = await execCapture(docker(), state.containerId, cmd, {
          env: workerEnv(false),
          timeoutMs: Math.max(1000, deadline - Date.now()),
          ...(user ? { user } : {}),
        });
        if (r.exitCode === 0) return;
        last = `exit ${r.exitCode ?? 'unknown'}: ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ')}`;
      } catch (err) {
        last = describeError(err);
      }
      if (Date.now() >= deadline) {
        throw fail(
          `service ${state.name} (${state.containerName}) did not become healthy within ${Math.round(healthTimeoutMs / 1000)} s: \`${cmd.join(' ')}\` failed (${last}). ` +
            `Is the worker in image ${state.def.image} current? Rebuild with \`lem images build ${[...state.backends].join(' ')}\`.`,
        );
      }
      await sleep(delay);
    }
  }

  function workerEnv(withToken: boolean): string[] {
    const e = ['PYTHONUNBUFFERED=1'];
    if (opts.mountWorker) e.push(`PYTHONPATH=${WORKER_MOUNT}`);
    if (execUser() !== undefined) e.push('HOME=/tmp');
    if (withToken && hfToken) e.push(`HF_TOKEN=${hfToken}`);
    return e;
  }

  async function createAndStart(state: Omit<ServiceState, 'containerId' | 'containerName' | 'startedAt' | 'used'>, c: RuntimeContext): Promise<ServiceState> {
    const id = await imageId(state.def, state.backends);
    if (getEngine().endpoint.local) {
      // Create the host directories ourselves so they belong to the user, not to root via dockerd.
      for (const dir of [c.workspaceRoot, hfHome()]) mkdirSync(dir, { recursive: true });
    }
    let container: Docker.Container | null = null;
    let number = await nextContainerNumber(state.name);
    for (let tries = 0; !container; tries++) {
      const spec = containerSpec(state, c, id, number);
      try {
        container = await docker().createContainer(spec);
      } catch (err) {
        if (statusCode(err) === 409 && tries < 20) {
          number++; // a concurrent campaign took that name
          continue;
        }
        throw startError(state, err);
      }
    }
    try {
      await container.start();
    } catch (err) {
      await container.remove({ force: true }).catch(() => undefined);
      throw startError(state, err);
    }
    const info = await container.inspect();
    const full: ServiceState = { ...state, containerId: info.Id, containerName: info.Name.replace(/^\//, ''), startedAt: info.State.StartedAt, used: false };
    log(`started service ${state.name} (${state.def.image}) as ${full.containerName}`);
    await waitHealthy(full);
    return full;
  }

  /** Start or adopt the container for one service. */
  async function ensureService(name: string, backends: Set<BackendName>, c: RuntimeContext): Promise<ServiceState> {
    const def = getCompose().services[name];
    if (!def) {
      throw fail(`backend ${[...backends].join(', ')} needs compose service "${name}", which is not in ${getCompose().files.join(', ')}`);
    }
    const existing = services.get(name);
    if (existing) {
      for (const b of backends) existing.backends.add(b);
      return existing;
    }
    const found = await findCampaignContainers(c, name);
    const running = found.filter((f) => f.State === 'running');
    for (const f of found) {
      if (f.State !== 'running' || f !== running[0]) {
        // A stopped leftover of this campaign (or a duplicate): replace it with a fresh one.
        await docker().getContainer(f.Id).remove({ force: true }).catch(() => undefined);
      }
    }
    const adopt = running[0];
    if (adopt) {
      const info = await docker().getContainer(adopt.Id).inspect();
      const state: ServiceState = { name, def, backends: new Set(backends), containerId: info.Id, containerName: info.Name.replace(/^\//, ''), startedAt: info.State.StartedAt, used: true };
      log(`adopted running service ${name} (${state.containerName}) for campaign ${c.campaignId}`);
      await waitHealthy(state);
      services.set(name, state);
      return state;
    }
    const state = await createAndStart({ name, def, backends: new Set(backends) }, c);
    services.set(name, state);
    return state;
  }

  /** Before a run: the service must be up (restart it when it died), and cold when asked. */
  async function readyForRun(backend: BackendName): Promise<ServiceState> {
    if (!ctx) throw new Error('docker runtime: dispatch() before prepare()');
    const name = serviceMap[backend];
    const state = services.get(name) ?? (await ensureService(name, new Set([backend]), ctx));
    let info: Docker.ContainerInspectInfo | null = null;
    try {
      info = await docker().getContainer(state.containerId).inspect();
    } catch (err) {
      if (statusCode(err) !== 404) throw fail(`cannot inspect service ${name}: ${describeError(err)}`);
    }
    if (!info) {
      // Removed underneath us: make a new one.
      services.delete(name);
      log(`service ${name} (${state.containerName}) is gone; starting a new one`);
      return ensureService(name, state.backends, ctx);
    }
    if (!info.State.Running) {
      log(`service ${name} (${state.containerName}) is not running (exit ${info.State.ExitCode}${info.State.OOMKilled ? ', OOM-killed' : ''}); starting it again`);
      try {
        await docker().getContainer(state.containerId).start();
      } catch (err) {
        if (statusCode(err) !== 304) throw startError(state, err);
      }
      await refreshAfterStart(state);
      return state;
    }
    if (ctx.forceColdStart && state.used) {
      log(`restarting service ${name} (${state.containerName}) for a cold start`);
      await docker().getContainer(state.containerId).restart({ t: 5 });
      await refreshAfterStart(state);
    }
    return state;
  }

  async function refreshAfterStart(state: ServiceState): Promise<void> {
    const info = await docker().getContainer(state.containerId).inspect();
    state.startedAt = info.State.StartedAt;
    state.used = false;
    await waitHealthy(state);
  }

  async function closeLog(stream: WriteStream): Promise<void> {
    await new Promise<void>((resolve) => {
      if (stream.closed) resolve();
      else stream.end(() => resolve());
    });
  }

  async function dispatch(spec: RunSpec, signal: AbortSignal, onStarted: (handle: string) => void): Promise<DispatchOutcome> {
    if (signal.aborted) return { exitCode: null, timedOut: false, failureReason: 'interrupted' };
    let state: ServiceState;
    try {
      state = await readyForRun(spec.backend);
    } catch (err) {
      return { exitCode: null, timedOut: false, failureReason: redact(err instanceof Error ? err.message : String(err)) };
    }
    state.used = true;
    const d = docker();
    const containerId = state.containerId;
    const logStream = createWriteStream(spec.logPath, { flags: 'a' });
    logStream.on('error', () => undefined);
    const worker = opts.workerCommand?.(spec) ?? ['python3', '-m', 'lem_worker', 'run', spec.configPath, '--out', spec.outDir];
    const user = execUser();

    let exec: Docker.Exec;
    let stream: Duplex;
    try {
      exec = await d.getContainer(containerId).exec({
        Cmd: ['sh', '-c', PID_WRAPPER, 'lem-run', ...worker],
        AttachStdout: true,
        AttachStderr: true,
        Tty: false,
        Env: workerEnv(true),
        WorkingDir: spec.outDir,
        ...(user ? { User: user } : {}),
      });
      stream = await exec.start({ hijack: false, stdin: false, Detach: false });
    } catch (err) {
      await closeLog(logStream);
      return { exitCode: null, timedOut: false, failureReason: redact(`cannot exec the worker in service ${state.name} (${state.containerName}): ${describeError(err)}`) };
    }

    let handle: Handle | null = null;
    let stop: { reason: string; timedOut: boolean } | null = null;
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

    // Did the container itself die (docker kill, OOM, engine restart) under the run? When the
    // worker ended by a signal the engine may not have recorded the container's death yet, so
    // look a few times before believing it is still up.
    let died: string | null = null;
    try {
      let info = await d.getContainer(containerId).inspect();
      const bySignal = stop === null && (exitCode === null || exitCode >= 128);
      for (let i = 0; bySignal && i < 40 && info.State.Running && info.State.StartedAt === state.startedAt; i++) {
        await sleep(50);
        info = await d.getContainer(containerId).inspect();
      }
      if (!info.State.Running || info.State.StartedAt !== state.startedAt) {
        const parts = [`exit code ${info.State.ExitCode}`];
        if (info.State.OOMKilled) parts.push('killed by the out-of-memory killer (OOMKilled)');
        if (info.State.Error) parts.push(info.State.Error);
        if (info.State.Running) parts.push('it was restarted meanwhile');
        died = `the ${state.name} service container (${state.containerName}) stopped during the run: ${parts.join(', ')}`;
      }
    } catch (err) {
      died = statusCode(err) === 404 ? `the ${state.name} service container (${state.containerName}) was removed during the run` : null;
    }

    // A stopped run: make sure the process is really gone before the next run starts.
    if (stop !== null && handle !== null && died === null) {
      const h: Handle = handle;
      if (await processAlive(d, h.containerId, h.pid, h.startTime).catch(() => false)) {
        await killInContainer(d, h.containerId, h.pid, h.startTime, 9).catch(() => undefined);
      }
    }
    await closeLog(logStream);

    const stopped = stop as { reason: string; timedOut: boolean } | null;
    if (stopped) return { exitCode, timedOut: stopped.timedOut, failureReason: redact(stopped.reason) };
    if (died) return { exitCode, timedOut: false, failureReason: redact(died) };
    if (exitCode === null) {
      return { exitCode: null, timedOut: false, failureReason: `the engine reported no exit code for the worker in ${state.containerName}` };
    }
    if (exitCode === 137) {
      return {
        exitCode,
        timedOut: false,
        failureReason: `the worker was killed by SIGKILL (exit 137) inside ${state.containerName}; usually the out-of-memory killer (see \`dmesg\` on the engine host)`,
      };
    }
    return { exitCode, timedOut: false, failureReason: null };
  }

  return {
    name: 'docker',

    serviceContainers() {
      return Object.fromEntries([...services.values()].map((s) => [s.name, s.containerId]));
    },

    async prepare(backends: readonly BackendName[], c: RuntimeContext): Promise<void> {
      ctx = c;
      await engineVersion(getEngine());
      const wanted = new Map<string, Set<BackendName>>();
      for (const b of backends) {
        const svc = serviceMap[b];
        const set = wanted.get(svc) ?? new Set<BackendName>();
        set.add(b);
        wanted.set(svc, set);
      }
      for (const [svc, bs] of wanted) await ensureService(svc, bs, c);
    },

    dispatch,

    async reap(handle: string): Promise<void> {
      const h = decodeHandle(handle);
      if (!h) return;
      const d = docker();
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

    async shutdown({ keepServices }: { keepServices: boolean }): Promise<void> {
      if (keepServices) {
        for (const s of services.values()) log(`keeping service ${s.name} (${s.containerName}) running`);
        services.clear();
        return;
      }
      const errors: string[] = [];
      for (const s of services.values()) {
        const c = docker().getContainer(s.containerId);
        try {
          await c.stop({ t: 3 }).catch((err: unknown) => {
            if (statusCode(err) !== 304 && statusCode(err) !== 404) throw err;
          });
          await c.remove({ force: true, v: true }).catch((err: unknown) => {
            if (statusCode(err) !== 404) throw err;
          });
          log(`removed service ${s.name} (${s.containerName})`);
        } catch (err) {
          errors.push(`${s.containerName}: ${describeError(err)}`);
        }
      }
      services.clear();
      if (errors.length > 0) throw fail(`could not remove service container(s): ${errors.join('; ')}`);
    },
  };
}
