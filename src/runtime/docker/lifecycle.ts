// Over 300 lines on purpose: one closure over the session's containers (find, create, adopt, recreate, remove share that state); spec and readiness are already their own files.
/**
 * The lifecycle of service containers: find, create and start, adopt, start again after a death,
 * restart for a cold start, remove. One container per compose service a campaign needs; the
 * session's containers are held here (service name → state).
 *
 * Adoption: a running container labelled for the same campaign and service is re-used (how a
 * resumed campaign reuses its services) only when its configuration hash (image id + resolved
 * spec, label lem.config-hash) matches what this session would create; otherwise it is replaced.
 *
 * A container removed under a campaign (`docker rm -f`; the engine answers "marked for removal"
 * while it goes, then "No such container") is waited out and created again, at most
 * maxRecreations times per service with a growing pause; past that the campaign stops with
 * ServicesLostError instead of failing its remaining runs one by one.
 */
import { mkdirSync } from 'node:fs';
import type Docker from 'dockerode';
import type { BackendName } from '../../contract/backends.js';
import type { RuntimeContext } from '../types.js';
import type { ComposeProject, ComposeService } from './compose.js';
import { describeError, statusCode, type Engine } from './engine.js';
import { isGoneError, ServicesLostError, startError } from './service-errors.js';
import { waitHealthy, type HealthCheck, type ReadinessHost } from './readiness.js';
import { campaignProjectName, campaignRunsDir, COMPOSE, containerSpec, LABELS, type GpuChoice, type GpuSetSpec, remoteVolumesFor, type ServiceDef, type ServiceState } from './service-spec.js';

/** What the lifecycle needs from the service layer. */
export interface LifecycleHost extends ReadinessHost {
  engine(): Engine;
  compose(): ComposeProject;
  log(message: string): void;
  hfHome(): string;
  health: HealthCheck;
  gpus: GpuChoice;
  init: boolean;
  workerMount: string | null;
  /** `uid:gid` of the containers (null: the image's user); known after prepare. */
  user(): string | null;
  /** Mount the HF cache read-write (decided per campaign at prepare). */
  hfWritable(): boolean;
  extraBinds: readonly string[];
  /** Prepares host directories the binds need (a local engine only), e.g. the shared device-lock directory. */
  prepareLocalHost(): void;
  /** Recreations of one service's container allowed per session (default 3). */
  maxRecreations: number;
  /** First pause before a recreation; doubles each time (default 1000 ms). */
  recreateBackoffMs: number;
  /** The GPU set this host's services serve (parallel GPU sets), or absent. */
  gpuSet?: GpuSetSpec | null;
  /** A remote engine: named volumes instead of binds of this machine's paths. */
  remote?: boolean;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface Lifecycle {
  /** Start or adopt the container for one service. */
  ensureService(name: string, backends: Set<BackendName>, c: RuntimeContext): Promise<ServiceState>;
  /** The service's container must be up (started again when it died, restarted when cold is asked). */
  readyForRun(name: string, backend: BackendName, c: RuntimeContext): Promise<ServiceState>;
  /** The service containers this session holds: service → container id. */
  containers(): Record<string, string>;
  /**
   * Removes the held containers (or, with keepServices, leaves them running) and forgets them;
   * with campaignId, also every container labelled for that campaign (leftovers of a killed session).
   */
  release(opts: { keepServices: boolean; campaignId?: string }): Promise<void>;
}

export function createLifecycle(host: LifecycleHost): Lifecycle {
  const services = new Map<string, ServiceState>();
  const recreations = new Map<string, number>();
  /** Services past their recreation bound: every later run is refused with the same error. */
  const lost = new Map<string, ServicesLostError>();
  const docker = (): Docker => host.docker();

  async function findCampaignContainers(c: RuntimeContext, service: string): Promise<Docker.ContainerInfo[]> {
    return docker().listContainers({
      all: true,
      filters: { label: [`${LABELS.managed}=lem`, `${COMPOSE.service}=${service}`, `${LABELS.campaign}=${c.campaignId}`, ...(host.gpuSet ? [`${LABELS.gpuSet}=${host.gpuSet.key}`] : [])] },
    });
  }

  async function nextContainerNumber(c: RuntimeContext, service: string): Promise<number> {
    const all = await docker().listContainers({
      all: true,
      filters: { label: [`${COMPOSE.project}=${campaignProjectName(host.compose().name, c.campaignId)}`, `${COMPOSE.service}=${service}`] },
    });
    let max = 0;
    for (const c of all) max = Math.max(max, Number(c.Labels[COMPOSE.number] ?? 0) || 0);
    return max + 1;
  }

  async function inspectImage(def: ComposeService, backends: Set<BackendName>): Promise<Docker.ImageInspectInfo> {
    try {
      return await docker().getImage(def.image).inspect();
    } catch (err) {
      if (statusCode(err) === 404) {
        const which = [...backends].sort().join(' ');
        throw host.fail(
          `image ${def.image} (service ${def.name}, backend ${which}) is not on the Docker engine at ${host.engine().endpoint.description}; ` +
            `build it with \`lem images build ${which}\`${def.build ? ` (or \`docker build -f ${def.build.dockerfile} -t ${def.image} ${def.build.context}\`)` : ''}`,
        );
      }
      throw host.fail(`cannot inspect image ${def.image}: ${describeError(err)}`);
    }
  }

  /** The create options for a service of this campaign, and their configuration hash. */
  async function specFor(state: ServiceDef, c: RuntimeContext, number: number): Promise<Docker.ContainerCreateOptions> {
    const image = await inspectImage(state.def, state.backends);
    const imageEnv = image.Config?.Env ?? [];
    return containerSpec(state, {
      project: host.compose(),
      ctx: c,
      imageId: image.Id,
      number,
      hfHome: host.hfHome(),
      gpus: host.gpus,
      init: host.init,
      workerMount: host.workerMount,
      user: host.user(),
      hfWritable: host.hfWritable(),
      needsHome: host.user() !== null && !imageEnv.some((e) => e.startsWith('HOME=')),
      extraBinds: host.extraBinds,
      gpuSet: host.gpuSet ?? null,
      remoteVolumes: host.remote ? remoteVolumesFor(c.campaignId) : null,
    });
  }

  async function createAndStart(state: ServiceDef, c: RuntimeContext): Promise<ServiceState> {
    if (host.engine().endpoint.local) {
      // Create the host directories ourselves so they belong to the user, not to root via dockerd.
      for (const dir of [campaignRunsDir(c), host.hfHome()]) mkdirSync(dir, { recursive: true });
      host.prepareLocalHost();
    }
    let container: Docker.Container | null = null;
    let number = await nextContainerNumber(c, state.name);
    for (let tries = 0; !container; tries++) {
      const spec = await specFor(state, c, number);
      try {
        container = await docker().createContainer(spec);
      } catch (err) {
        if (statusCode(err) === 409 && tries < 20) {
          number++; // a concurrent campaign took that name
          continue;
        }
        throw startError(host, state, err);
      }
    }
    try {
      await container.start();
    } catch (err) {
      await container.remove({ force: true }).catch(() => undefined);
      throw startError(host, state, err);
    }
    const info = await container.inspect();
    const full: ServiceState = { ...state, containerId: info.Id, containerName: info.Name.replace(/^\//, ''), startedAt: info.State.StartedAt, used: false };
    host.log(`started service ${state.name} (${state.def.image}) as ${full.containerName}`);
    await waitHealthy(host, full, host.health);
    return full;
  }

  async function ensureService(name: string, backends: Set<BackendName>, c: RuntimeContext): Promise<ServiceState> {
    const def = host.compose().services[name];
    if (!def) {
      throw host.fail(`backend ${[...backends].join(', ')} needs compose service "${name}", which is not in ${host.compose().files.join(', ')}`);
    }
    const existing = services.get(name);
    if (existing) {
      for (const b of backends) existing.backends.add(b);
      return existing;
    }
    const found = await findCampaignContainers(c, name);
    const running = found.filter((f) => f.State === 'running');
    let adopt = running[0];
    if (adopt) {
      const wanted = (await specFor({ name, def, backends }, c, 0)).Labels?.[LABELS.configHash];
      if (adopt.Labels[LABELS.configHash] !== wanted) {
        host.log(
          `replacing running service ${name} (${adopt.Names[0]?.replace(/^\//, '') ?? adopt.Id.slice(0, 12)}): its configuration hash ${adopt.Labels[LABELS.configHash]?.slice(0, 12) ?? '(none)'} ` +
            `does not match this session's ${wanted?.slice(0, 12) ?? ''} (the image or the service spec changed)`,
        );
        adopt = undefined;
      }
    }
    for (const f of found) {
      if (f !== adopt) {
        // A stopped leftover of this campaign, a duplicate or a stale configuration: replace it.
        await docker().getContainer(f.Id).remove({ force: true }).catch(() => undefined);
      }
    }
    if (adopt) {
      const info = await docker().getContainer(adopt.Id).inspect();
      const state: ServiceState = { name, def, backends: new Set(backends), containerId: info.Id, containerName: info.Name.replace(/^\//, ''), startedAt: info.State.StartedAt, used: true };
      host.log(`adopted running service ${name} (${state.containerName}) for campaign ${c.campaignId}`);
      await waitHealthy(host, state, host.health);
      services.set(name, state);
      return state;
    }
    const state = await createAndStart({ name, def, backends: new Set(backends) }, c);
    services.set(name, state);
    return state;
  }

  async function refreshAfterStart(state: ServiceState): Promise<void> {
    const info = await docker().getContainer(state.containerId).inspect();
    state.startedAt = info.State.StartedAt;
    state.used = false;
    await waitHealthy(host, state, host.health);
  }

  /** Waits (bounded) until a container being removed is gone, so its name and resources are free. */
  async function waitRemoved(id: string): Promise<void> {
    for (let i = 0; i < 150; i++) {
      try {
        await docker().getContainer(id).inspect();
      } catch (err) {
        if (statusCode(err) === 404) return;
      }
      await sleep(200);
    }
  }

  /** The container of a held service was removed (or is being removed): wait, then create anew. */
  async function recreate(state: ServiceState, c: RuntimeContext, why: string): Promise<ServiceState> {
    services.delete(state.name);
    const n = (recreations.get(state.name) ?? 0) + 1;
    recreations.set(state.name, n);
    if (n > host.maxRecreations) {
      const err = new ServicesLostError(
        host.redact(
          `the ${state.name} service container was removed ${n} times during this campaign (last: ${state.containerName}, ${why}); ` +
            `lem recreated it ${host.maxRecreations} time(s) and now stops the campaign instead of failing its remaining runs. ` +
            `Find what removes lem's containers (a \`docker rm -f\`, a prune job, an engine restart), then \`lem campaign resume ${c.campaignId}\`.`,
        ),
      );
      lost.set(state.name, err);
      throw err;
    }
    await waitRemoved(state.containerId);
    const pause = host.recreateBackoffMs * 2 ** (n - 1);
    host.log(`service ${state.name} (${state.containerName}) ${why}; creating a new one in ${(pause / 1000).toFixed(1)} s (recreation ${n} of at most ${host.maxRecreations})`);
    await sleep(pause);
    return ensureService(state.name, state.backends, c);
  }

  async function readyForRun(name: string, backend: BackendName, c: RuntimeContext): Promise<ServiceState> {
    const gone = lost.get(name);
    if (gone) throw gone;
    const state = services.get(name) ?? (await ensureService(name, new Set([backend]), c));
    let info: Docker.ContainerInspectInfo | null = null;
    try {
      info = await docker().getContainer(state.containerId).inspect();
    } catch (err) {
      if (statusCode(err) !== 404) throw host.fail(`cannot inspect service ${name}: ${describeError(err)}`);
    }
    if (!info) return recreate(state, c, 'was removed');
    if (info.State.Status === 'removing' || info.State.Status === 'dead' || info.State.Dead) return recreate(state, c, `is ${info.State.Status} (being removed)`);
    if (!info.State.Running) {
      host.log(`service ${name} (${state.containerName}) is not running (exit ${info.State.ExitCode}${info.State.OOMKilled ? ', OOM-killed' : ''}); starting it again`);
      try {
        await docker().getContainer(state.containerId).start();
      } catch (err) {
        if (isGoneError(err)) return recreate(state, c, `could not be started again (${describeError(err)})`);
        if (statusCode(err) !== 304) throw startError(host, state, err);
      }
      await refreshAfterStart(state);
      return state;
    }
    if (c.forceColdStart && state.used) {
      host.log(`restarting service ${name} (${state.containerName}) for a cold start`);
      await docker().getContainer(state.containerId).restart({ t: 5 });
      await refreshAfterStart(state);
    }
    return state;
  }

  return {
    ensureService,
    readyForRun,

    containers() {
      return Object.fromEntries([...services.values()].map((s) => [s.name, s.containerId]));
    },

    async release({ keepServices, campaignId }: { keepServices: boolean; campaignId?: string }): Promise<void> {
      if (keepServices) {
        for (const s of services.values()) host.log(`keeping service ${s.name} (${s.containerName}) running`);
        services.clear();
        return;
      }
      const errors: string[] = [];
      if (campaignId !== undefined) {
        // Leftovers of an earlier session of this campaign (kill -9, a resume that ran nothing).
        const held = new Set([...services.values()].map((s) => s.containerId));
        let leftovers: Docker.ContainerInfo[] = [];
        try {
          leftovers = await docker().listContainers({ all: true, filters: { label: [`${LABELS.managed}=lem`, `${LABELS.campaign}=${campaignId}`] } });
        } catch (err) {
          errors.push(`cannot list the containers of campaign ${campaignId}: ${describeError(err)}`);
        }
        for (const l of leftovers.filter((x) => !held.has(x.Id))) {
          const label = l.Names[0]?.replace(/^\//, '') ?? l.Id.slice(0, 12);
          try {
            await docker().getContainer(l.Id).remove({ force: true, v: true });
            host.log(`removed service container ${label} left by an earlier session of campaign ${campaignId}`);
          } catch (err) {
            if (!isGoneError(err)) errors.push(`${label}: ${describeError(err)}`);
          }
        }
      }
      for (const s of services.values()) {
        const c = docker().getContainer(s.containerId);
        try {
          await c.stop({ t: 3 }).catch((err: unknown) => {
            if (statusCode(err) !== 304 && !isGoneError(err)) throw err;
          });
          await c.remove({ force: true, v: true }).catch((err: unknown) => {
            if (!isGoneError(err)) throw err;
          });
          host.log(`removed service ${s.name} (${s.containerName})`);
        } catch (err) {
          errors.push(`${s.containerName}: ${describeError(err)}`);
        }
      }
      services.clear();
      if (errors.length > 0) throw host.fail(`could not remove service container(s): ${errors.join('; ')}`);
    },
  };
}
