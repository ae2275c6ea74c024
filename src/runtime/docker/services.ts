/**
 * The service containers of the docker runtime: one long-lived, idle container per compose
 * service a campaign needs, found or created here, kept healthy, started again when it died,
 * restarted for a cold start, and removed at the end. What runs inside them is runtime.ts's job.
 *
 *  - Containers carry compose labels (project, service, oneoff=False, container-number, …), so
 *    `docker compose ps` lists them, and lem.* labels (lem.campaign, lem.backend, …). prepare()
 *    re-adopts a running container labelled for the same campaign and service, which is how a
 *    resumed campaign reuses its services.
 *  - The workspace root is bind-mounted at the same absolute path, so the runner's paths work
 *    unchanged inside; the Hugging Face cache (HF_HOME, default ~/.cache/huggingface) likewise.
 *    HF_TOKEN goes only into each exec's environment: never into the container config, labels,
 *    logs, handles or error messages.
 */
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import PQueue from 'p-queue';
import type { BackendName } from '../../results/schema.js';
import { LemError } from '../../util/errors.js';
import { packageRoot, workerDir } from '../../util/paths.js';
import type { RuntimeContext } from '../types.js';
import { defaultComposeFiles, loadCompose, type ComposeProject, type ComposeService } from './compose.js';
import { connectEngine, describeError, engineVersion, statusCode, type Engine } from './engine.js';
import { execCapture } from './exec.js';

/** The options of the docker runtime that shape its service containers. */
export interface ServiceOptions {
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

/** Where workers take their device locks unless LEM_LOCK_DIR says otherwise (as the worker's default). */
const DEFAULT_LOCK_DIR = '/tmp/lem-device-locks';

/** One service container this session holds. */
export interface ServiceState {
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

/** A service before it has a container. */
type ServiceDef = Pick<ServiceState, 'name' | 'def' | 'backends'>;

export interface Services {
  /** The engine's client; connects on first use. */
  docker(): Docker;
  /** Hides HF_TOKEN in a message. */
  redact(message: string): string;
  /** A LemError with the message redacted. */
  fail(message: string): LemError;
  /** The user a worker exec runs as (undefined: the image's). */
  execUser(): string | undefined;
  /** The environment of a worker exec; HF_TOKEN only when withToken. */
  workerEnv(withToken: boolean): string[];
  /** Checks the engine, then starts or adopts the service container of each backend. */
  prepare(backends: readonly BackendName[], ctx: RuntimeContext): Promise<void>;
  /** Before a run: the backend's service must be up (restart it when it died), and cold when asked. */
  readyForRun(backend: BackendName): Promise<ServiceState>;
  /** The service containers this session holds: service → container id. */
  containers(): Record<string, string>;
  /** Removes the service containers (or, with keepServices, leaves them running) and forgets them. */
  release(opts: { keepServices: boolean }): Promise<void>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function createServices(opts: ServiceOptions = {}): Services {
  const env = opts.env ?? process.env;
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

  function workerEnv(withToken: boolean): string[] {
    const e = ['PYTHONUNBUFFERED=1'];
    if (opts.mountWorker) e.push(`PYTHONPATH=${WORKER_MOUNT}`);
    if (execUser() !== undefined) e.push('HOME=/tmp');
    if (withToken && hfToken) e.push(`HF_TOKEN=${hfToken}`);
    return e;
  }

  /** The host's device-lock directory, bind-mounted at the same path so workers in every container share the locks. */
  function lockDir(): string {
    return env['LEM_LOCK_DIR'] || DEFAULT_LOCK_DIR;
  }

  function hfHome(): string {
    return opts.hfHome ?? env['HF_HOME'] ?? join(homedir(), '.cache', 'huggingface');
  }

  // --- the container spec ---------------------------------------------------------------------

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

  function containerSpec(state: ServiceDef, c: RuntimeContext, imageId: string, number: number): Docker.ContainerCreateOptions {
    const def = state.def;
    const project = getCompose();
    const hf = hfHome();
    const binds = [`${c.workspaceRoot}:${c.workspaceRoot}`, `${hf}:${hf}`, `${lockDir()}:${lockDir()}`];
    if (opts.mountWorker) binds.push(`${workerDir()}:${WORKER_MOUNT}:ro`);
    const tmpfs: Record<string, string> = {};
    for (const v of def.volumes) {
      if (v.type === 'tmpfs') tmpfs[v.target] = '';
      else binds.push(`${v.source}:${v.target}${v.readOnly ? ':ro' : ''}`);
    }
    const envList = Object.entries({ ...def.environment, HF_HOME: hf, PYTHONUNBUFFERED: '1', LEM_LOCK_DIR: lockDir() }).map(([k, v]) => `${k}=${v}`);
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

  // --- finding, creating and starting containers ----------------------------------------------

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
  function startError(state: Pick<ServiceState, 'name' | 'def'>, err: unknown): LemError {
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

  async function createAndStart(state: ServiceDef, c: RuntimeContext): Promise<ServiceState> {
    const id = await imageId(state.def, state.backends);
    if (getEngine().endpoint.local) {
      // Create the host directories ourselves so they belong to the user, not to root via dockerd.
      for (const dir of [c.workspaceRoot, hfHome()]) mkdirSync(dir, { recursive: true });
      // The device locks are shared by workers of any uid: a sticky, world-writable directory.
      mkdirSync(lockDir(), { recursive: true });
      try {
        chmodSync(lockDir(), 0o1777);
      } catch {
        // someone else's directory: it is theirs to keep shareable
      }
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

  // --- keeping them up ------------------------------------------------------------------------

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

  // --- the session's services -----------------------------------------------------------------

  return {
    docker,
    redact,
    fail,
    execUser,
    workerEnv,
    readyForRun,

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
      // Services start side by side (their health waits can take minutes on GPU images), at most
      // two at a time to bound image loading on the engine; every start is awaited before failing.
      const queue = new PQueue({ concurrency: 2 });
      const started = await Promise.allSettled([...wanted].map(([svc, bs]) => queue.add(() => ensureService(svc, bs, c))));
      const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
    },

    containers() {
      return Object.fromEntries([...services.values()].map((s) => [s.name, s.containerId]));
    },

    async release({ keepServices }: { keepServices: boolean }): Promise<void> {
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
