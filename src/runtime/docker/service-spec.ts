/**
 * The service spec: what a compose service becomes as Engine API create options (image, idle
 * entrypoint, labels, mounts, GPUs through device requests, shm/ipc/ulimits). Pure: no engine
 * calls; lifecycle.ts creates containers from it.
 *
 *  - Containers carry compose labels (project, service, oneoff=False, container-number, …), so
 *    `docker compose ps` lists them, and lem.* labels (lem.campaign, lem.backend, …).
 *  - The workspace root is bind-mounted at the same absolute path, so the runner's paths work
 *    unchanged inside; the Hugging Face cache (HF_HOME, default ~/.cache/huggingface) likewise.
 */
import { createHash } from 'node:crypto';
import type Docker from 'dockerode';
import type { BackendName } from '../../results/schema.js';
import type { RuntimeContext } from '../types.js';
import type { ComposeProject, ComposeService } from './compose.js';

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

export const COMPOSE = {
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
export const IDLE_COMMAND = "trap 'exit 0' TERM INT; while :; do sleep 86400 & wait $!; done";

export const WORKER_MOUNT = '/opt/lem/worker';

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
export type ServiceDef = Pick<ServiceState, 'name' | 'def' | 'backends'>;

/** GPU request override: 'compose' (what the compose file reserves), 'none', 'all', or device ids. */
export type GpuChoice = 'compose' | 'none' | 'all' | string[];

export function deviceRequests(def: ComposeService, gpus: GpuChoice): Docker.DeviceRequest[] {
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

/** Everything a container spec depends on besides the service itself. */
export interface SpecInput {
  project: ComposeProject;
  ctx: RuntimeContext;
  imageId: string;
  number: number;
  hfHome: string;
  gpus: GpuChoice;
  init: boolean;
  /** Host path of images/worker to mount over the image's copy, or null. */
  workerMount: string | null;
}

export function containerSpec(state: ServiceDef, input: SpecInput): Docker.ContainerCreateOptions {
  const { def } = state;
  const { project, ctx: c, imageId, number, hfHome: hf } = input;
  const binds = [`${c.workspaceRoot}:${c.workspaceRoot}`, `${hf}:${hf}`];
  if (input.workerMount) binds.push(`${input.workerMount}:${WORKER_MOUNT}:ro`);
  const tmpfs: Record<string, string> = {};
  for (const v of def.volumes) {
    if (v.type === 'tmpfs') tmpfs[v.target] = '';
    else binds.push(`${v.source}:${v.target}${v.readOnly ? ':ro' : ''}`);
  }
  const envList = Object.entries({ ...def.environment, HF_HOME: hf, PYTHONUNBUFFERED: '1' }).map(([k, v]) => `${k}=${v}`);
  const hostConfig: Docker.HostConfig = {
    Binds: binds,
    Init: input.init,
    DeviceRequests: deviceRequests(def, input.gpus),
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
