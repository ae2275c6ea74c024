/**
 * The lifecycle of service containers: find, create and start, adopt, start again after a death,
 * restart for a cold start, remove. One container per compose service a campaign needs; the
 * session's containers are held here (service name → state).
 *
 * prepare-time adoption: a running container labelled for the same campaign and service is
 * re-used, which is how a resumed campaign reuses its services.
 */
import { mkdirSync } from 'node:fs';
import type Docker from 'dockerode';
import type { BackendName } from '../../results/schema.js';
import type { LemError } from '../../util/errors.js';
import type { RuntimeContext } from '../types.js';
import type { ComposeProject, ComposeService } from './compose.js';
import { describeError, statusCode, type Engine } from './engine.js';
import { waitHealthy, type HealthCheck, type ReadinessHost } from './readiness.js';
import { COMPOSE, containerSpec, LABELS, type GpuChoice, type ServiceDef, type ServiceState } from './service-spec.js';

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
}

export interface Lifecycle {
  /** Start or adopt the container for one service. */
  ensureService(name: string, backends: Set<BackendName>, c: RuntimeContext): Promise<ServiceState>;
  /** The service's container must be up (started again when it died, restarted when cold is asked). */
  readyForRun(name: string, backend: BackendName, c: RuntimeContext): Promise<ServiceState>;
  /** The service containers this session holds: service → container id. */
  containers(): Record<string, string>;
  /** Removes the held containers (or, with keepServices, leaves them running) and forgets them. */
  release(opts: { keepServices: boolean }): Promise<void>;
}

/** Messages from a failed start, rephrased where the cause is known. */
export function startError(host: Pick<ReadinessHost, 'fail'>, state: Pick<ServiceState, 'name' | 'def'>, err: unknown): LemError {
  const msg = describeError(err);
  if (/could not select device driver|nvidia/i.test(msg)) {
    return host.fail(
      `service ${state.name} reserves GPUs but the Docker engine cannot provide them (${msg}). Install the NVIDIA Container Toolkit on the engine's host ` +
        '(`nvidia-ctk runtime configure --runtime=docker`, then restart dockerd) or run without GPUs via LEM_COMPOSE_FILE=docker-compose.yml:compose/cpu-only.yml; `lem doctor` checks this.',
    );
  }
  return host.fail(`cannot start service ${state.name} (${state.def.image}): ${msg}`);
}

export function createLifecycle(host: LifecycleHost): Lifecycle {
  const services = new Map<string, ServiceState>();
  const docker = (): Docker => host.docker();

  async function findCampaignContainers(c: RuntimeContext, service: string): Promise<Docker.ContainerInfo[]> {
    return docker().listContainers({
      all: true,
      filters: { label: [`${COMPOSE.project}=${host.compose().name}`, `${COMPOSE.service}=${service}`, `${LABELS.campaign}=${c.campaignId}`] },
    });
  }

  async function nextContainerNumber(service: string): Promise<number> {
    const all = await docker().listContainers({
      all: true,
      filters: { label: [`${COMPOSE.project}=${host.compose().name}`, `${COMPOSE.service}=${service}`] },
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
        throw host.fail(
          `image ${def.image} (service ${def.name}, backend ${which}) is not on the Docker engine at ${host.engine().endpoint.description}; ` +
            `build it with \`lem images build ${which}\`${def.build ? ` (or \`docker build -f ${def.build.dockerfile} -t ${def.image} ${def.build.context}\`)` : ''}`,
        );
      }
      throw host.fail(`cannot inspect image ${def.image}: ${describeError(err)}`);
    }
  }

  async function createAndStart(state: ServiceDef, c: RuntimeContext): Promise<ServiceState> {
    const id = await imageId(state.def, state.backends);
    if (host.engine().endpoint.local) {
      // Create the host directories ourselves so they belong to the user, not to root via dockerd.
      for (const dir of [c.workspaceRoot, host.hfHome()]) mkdirSync(dir, { recursive: true });
    }
    let container: Docker.Container | null = null;
    let number = await nextContainerNumber(state.name);
    for (let tries = 0; !container; tries++) {
      const spec = containerSpec(state, {
        project: host.compose(),
        ctx: c,
        imageId: id,
        number,
        hfHome: host.hfHome(),
        gpus: host.gpus,
        init: host.init,
        workerMount: host.workerMount,
      });
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

  async function readyForRun(name: string, backend: BackendName, c: RuntimeContext): Promise<ServiceState> {
    const state = services.get(name) ?? (await ensureService(name, new Set([backend]), c));
    let info: Docker.ContainerInspectInfo | null = null;
    try {
      info = await docker().getContainer(state.containerId).inspect();
    } catch (err) {
      if (statusCode(err) !== 404) throw host.fail(`cannot inspect service ${name}: ${describeError(err)}`);
    }
    if (!info) {
      // Removed underneath us: make a new one.
      services.delete(name);
      host.log(`service ${name} (${state.containerName}) is gone; starting a new one`);
      return ensureService(name, state.backends, c);
    }
    if (!info.State.Running) {
      host.log(`service ${name} (${state.containerName}) is not running (exit ${info.State.ExitCode}${info.State.OOMKilled ? ', OOM-killed' : ''}); starting it again`);
      try {
        await docker().getContainer(state.containerId).start();
      } catch (err) {
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

    async release({ keepServices }: { keepServices: boolean }): Promise<void> {
      if (keepServices) {
        for (const s of services.values()) host.log(`keeping service ${s.name} (${s.containerName}) running`);
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
