/**
 * The service containers of the docker runtime: one long-lived, idle container per compose
 * service a campaign needs. This file is the facade runtime.ts talks to; the work is split as
 * testcontainers-node splits it:
 *
 *  - service-spec.ts: compose service → Engine API create options (labels, mounts, GPUs); pure.
 *  - readiness.ts: waiting for the worker's health check.
 *  - lifecycle.ts: find, create and start, adopt, start again, recreate, restart, remove
 *    (service-errors.ts: what it says when that fails).
 *
 * Here: the options, the engine and compose project (loaded on first use), the worker's user and
 * environment, the Hugging Face cache's access, and HF_TOKEN handling: it goes only into the
 * environment of execs whose backend loads from the hub (never calibration), never into the
 * container config, labels, logs, handles or error messages.
 *
 * The worker's user (`uid:gid`, the container's `User` and every exec's): $LEM_WORKER_USER
 * (`image` keeps the image's user); else lem's own uid:gid when lem is not root; else (lem as
 * root) SUDO_UID:SUDO_GID, or the owner of the state directory, or 65534:65534 (nobody) when
 * those are root too. Files it writes in the run directory are then the user's, not root's.
 */
import { chmodSync, chownSync, mkdirSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import PQueue from 'p-queue';
import { backendsWhere, type BackendName } from '../../contract/backends.js';
import { LemError } from '../../util/errors.js';
import { packageRoot, workerDir } from '../../util/paths.js';
import type { RuntimeContext } from '../types.js';
import { defaultComposeFiles, loadCompose, type ComposeProject } from './compose.js';
import { connectEngine, engineVersion, type Engine } from './engine.js';
import { hfCacheAccess, type HfCacheAccess } from './hf-cache.js';
import { createLifecycle, type LifecycleHost } from './lifecycle.js';
import { probeImage } from './probe.js';
import { DEFAULT_SERVICES, WORKER_MOUNT, type GpuChoice, type GpuSetSpec, REMOTE_LOCKS_AT, type ServiceState } from './service-spec.js';
import type { ProbeOutcome } from '../types.js';

export { DEFAULT_SERVICES, LABELS, campaignProjectName, type ServiceState } from './service-spec.js';
export { ServicesLostError, isGoneError } from './service-errors.js';

/** Backends whose worker loads models from the Hugging Face hub and so may need HF_TOKEN. */
const HUB_BACKENDS: ReadonlySet<BackendName> = new Set<BackendName>(backendsWhere((s) => s.hub));

/** The unprivileged user of last resort (nobody:nogroup on Debian). */
const NOBODY = '65534:65534';

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
  gpus?: GpuChoice;
  /** Run docker-init as PID 1 (reaps orphans, forwards signals). Default true. */
  init?: boolean;
  /** User of the containers and worker execs (`uid:gid`); null: the image's. Default: see the file comment. */
  user?: string | null;
  /** More host binds for every service container (`src:dst[:opts]`). */
  extraBinds?: string[];
  /** Recreations of a removed service container per session before the campaign stops. Default 3. */
  maxRecreations?: number;
  /** Pause before the first recreation, doubled each time. Default 1000 ms. */
  recreateBackoffMs?: number;
  /** Bind-mount this checkout's images/worker over the image's copy (worker development). */
  mountWorker?: boolean;
  /** Wait this long for `lem_worker health` after a service starts. Default 180 s. */
  healthTimeoutS?: number;
  /** The readiness probe; default python3 -m lem_worker health. */
  healthCommand?: string[];
  /** A remote engine (no shared filesystem): named volumes, no binds of this machine's paths (pool.ts). */
  remote?: boolean;
  /** The GPU set these services serve (parallel GPU sets; pool.ts makes one runtime per set). */
  gpuSet?: GpuSetSpec;
  /** Progress messages (service started / adopted / restarted / removed). Default: none. */
  log?: (message: string) => void;
}

export interface Services {
  /** The engine's client; connects on first use. */
  docker(): Docker;
  /** Hides HF_TOKEN in a message. */
  redact(message: string): string;
  /** A LemError with the message redacted. */
  fail(message: string): LemError;
  /** The user a worker exec runs as (undefined: the image's). */
  execUser(): string | undefined;
  /** The environment of a worker exec; HF_TOKEN only when withToken is a backend that loads from the hub. */
  workerEnv(withToken: boolean | BackendName): string[];
  /** Before a run: make its output directory writable by the worker's user (lem as root chowns it). */
  grantRunDir(dir: string): void;
  /** Checks the engine, then starts or adopts the service container of each backend. */
  prepare(backends: readonly BackendName[], ctx: RuntimeContext): Promise<void>;
  /** Before a run: the backend's service must be up (restart it when it died), and cold when asked. */
  readyForRun(backend: BackendName): Promise<ServiceState>;
  /** The service containers this session holds: service → container id. */
  containers(): Record<string, string>;
  /** Preflight: the backend's image exists and its worker's probe report (a throwaway container, removed). */
  probe(backend: BackendName, configs: readonly unknown[]): Promise<ProbeOutcome>;
  /** Removes the service containers (or, with keepServices, leaves them running) and forgets them; with campaignId, also its leftovers. */
  release(opts: { keepServices: boolean; campaignId?: string }): Promise<void>;
}

/** Where workers take their device locks unless LEM_LOCK_DIR says otherwise (as the worker's default). */
const DEFAULT_LOCK_DIR = '/tmp/lem-device-locks';

export function createServices(opts: ServiceOptions = {}): Services {
  const env = opts.env ?? process.env;
  const hfToken = env['HF_TOKEN'] || env['HUGGING_FACE_HUB_TOKEN'] || '';
  const serviceMap: Record<BackendName, string> = {
    ...DEFAULT_SERVICES,
    calibration: opts.calibrationService ?? env['LEM_CALIBRATION_SERVICE'] ?? DEFAULT_SERVICES.calibration,
    ...opts.services,
  };

  let engine: Engine | null = opts.engine ?? null;
  let compose: ComposeProject | null = null;
  let ctx: RuntimeContext | null = null;
  let user: { value: string | null } | undefined;
  let hfAccess: HfCacheAccess | null = null;

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

  function resolveUser(workspaceRoot: string | null): string | null {
    if (opts.user !== undefined) return opts.user;
    const fromEnv = env['LEM_WORKER_USER']?.trim();
    if (fromEnv) {
      if (fromEnv === 'image') return null;
      if (!/^[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+)?$/.test(fromEnv)) throw fail(`LEM_WORKER_USER must be uid:gid (or a user name inside the image, or \`image\`), not ${JSON.stringify(fromEnv)}`);
      return fromEnv;
    }
    const uid = process.getuid?.();
    const gid = process.getgid?.();
    if (uid === undefined || gid === undefined) return NOBODY;
    if (uid !== 0) return `${uid}:${gid}`;
    const sudoUid = Number(env['SUDO_UID']);
    const sudoGid = Number(env['SUDO_GID']);
    if (Number.isInteger(sudoUid) && sudoUid > 0 && Number.isInteger(sudoGid) && sudoGid >= 0) return `${sudoUid}:${sudoGid}`;
    if (workspaceRoot !== null) {
      try {
        const st = statSync(workspaceRoot);
        if (st.uid !== 0) return `${st.uid}:${st.gid}`;
      } catch {
        // not there yet: fall through
      }
    }
    return NOBODY;
  }

  /** The user of the containers and execs; decided once per session (at prepare, from the state directory). */
  function workerUser(): string | null {
    user ??= { value: resolveUser(ctx?.workspaceRoot ?? null) };
    return user.value;
  }

  /** The host's device-lock directory, bind-mounted at the same path so workers in every container share the locks. */
  function lockDir(): string {
    if (opts.remote) return `${REMOTE_LOCKS_AT}/locks`;
    return env['LEM_LOCK_DIR'] || DEFAULT_LOCK_DIR;
  }

  /** On a local engine: the lock directory exists and is shared by workers of any uid (sticky, world-writable). */
  function prepareLocalHost(): void {
    mkdirSync(lockDir(), { recursive: true });
    try {
      chmodSync(lockDir(), 0o1777);
    } catch {
      // someone else's directory: it is theirs to keep shareable
    }
  }

  function execUser(): string | undefined {
    return workerUser() ?? undefined;
  }

  function workerEnv(withToken: boolean | BackendName): string[] {
    const e = ['PYTHONUNBUFFERED=1', `LEM_LOCK_DIR=${lockDir()}`];
    if (opts.mountWorker) e.push(`PYTHONPATH=${WORKER_MOUNT}`);
    const token = typeof withToken === 'boolean' ? withToken : HUB_BACKENDS.has(withToken);
    if (token && hfToken) e.push(`HF_TOKEN=${hfToken}`);
    return e;
  }

  function grantRunDir(dir: string): void {
    const u = workerUser();
    const m = u === null ? null : /^(\d+):(\d+)$/.exec(u);
    if (!m || process.getuid?.() !== 0 || m[1] === '0') return;
    try {
      chownSync(dir, Number(m[1]), Number(m[2]));
    } catch {
      // A remote engine's path that is not on this machine: nothing to grant here.
    }
  }

  function hfHome(): string {
    return opts.hfHome ?? env['HF_HOME'] ?? join(homedir(), '.cache', 'huggingface');
  }

  const host: LifecycleHost = {
    docker,
    redact,
    fail,
    execUser,
    workerEnv,
    engine: getEngine,
    compose: getCompose,
    log: (m) => opts.log?.(m),
    hfHome,
    health: { command: opts.healthCommand ?? ['python3', '-m', 'lem_worker', 'health'], timeoutMs: (opts.healthTimeoutS ?? 180) * 1000 },
    gpus: opts.gpus ?? 'compose',
    init: opts.init ?? true,
    workerMount: opts.mountWorker ? workerDir() : null,
    user: workerUser,
    hfWritable: () => hfAccess?.writable ?? false,
    extraBinds: [`${lockDir()}:${lockDir()}`, ...(opts.extraBinds ?? [])],
    prepareLocalHost,
    maxRecreations: opts.maxRecreations ?? 3,
    recreateBackoffMs: opts.recreateBackoffMs ?? 1000,
    gpuSet: opts.gpuSet ?? null,
    remote: opts.remote ?? false,
  };
  const lifecycle = createLifecycle(host);

  return {
    docker,
    redact,
    fail,
    execUser,
    workerEnv,
    grantRunDir,

    async readyForRun(backend: BackendName): Promise<ServiceState> {
      if (!ctx) throw new Error('docker runtime: dispatch() before prepare()');
      return lifecycle.readyForRun(serviceMap[backend], backend, ctx);
    },

    async prepare(backends: readonly BackendName[], c: RuntimeContext): Promise<void> {
      ctx = c;
      user = undefined;
      await engineVersion(getEngine());
      const hf = hfHome();
      hfAccess = hfCacheAccess(env['HF_HUB_CACHE'] ?? join(hf, 'hub'), c.hub);
      host.log(`Hugging Face cache ${hf} mounted ${hfAccess.writable ? 'read-write' : 'read-only'}: ${hfAccess.reason}`);
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
      const started = await Promise.allSettled([...wanted].map(([svc, bs]) => queue.add(() => lifecycle.ensureService(svc, bs, c))));
      const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
    },

    async probe(backend: BackendName, configs: readonly unknown[]): Promise<ProbeOutcome> {
      const project = getCompose();
      const name = serviceMap[backend];
      const def = project.services[name];
      if (!def) return { ok: false, where: `service ${name}`, problem: `the compose files define no service ${name} for backend ${backend}`, fix: `add a ${name} service to ${project.files.join(', ')}` };
      return probeImage(docker(), { def, backends: [backend], project: project.name, gpus: opts.gpus ?? 'compose', workerMount: opts.mountWorker ? workerDir() : null, engineDescription: getEngine().endpoint.description }, configs);
    },

    containers: () => lifecycle.containers(),
    release: (o) => lifecycle.release(o),
  };
}
