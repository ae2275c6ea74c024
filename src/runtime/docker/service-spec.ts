/**
 * The service spec: what a compose service becomes as Engine API create options (image, idle
 * entrypoint, labels, mounts, GPUs through device requests, shm/ipc/ulimits). Pure: no engine
 * calls; lifecycle.ts creates containers from it.
 *
 *  - Each campaign is a compose project of its own (`<project>-<campaign id>`, see
 *    campaignProjectName), so `docker compose down` in the repository (project `lem`) never touches
 *    a running campaign; `docker compose -p <that name> ps` lists its services. lem.* labels carry
 *    the campaign id, the base project and the configuration hash used to decide adoption.
 *  - Only the campaign's run directory (<workspace>/runs/<campaign id>) is bind-mounted read-write,
 *    at the same absolute path so the runner's paths work unchanged inside; the Hugging Face cache
 *    (HF_HOME) is mounted at its path, read-only unless the campaign needs a download.
 *  - The container runs as a non-root user (`User: uid:gid`), never privileged, with no added
 *    capabilities, no Docker socket, on the default bridge network unless the compose file sets
 *    network_mode; GPUs as device requests (or the compose file's `devices:`/`runtime:`), cpuset,
 *    group_add (supplementary groups of that user) and security_opt (confinement options only)
 *    passed through.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { DEFAULT_SERVICES, type BackendName } from '../../contract/backends.js';
import type { RuntimeContext } from '../types.js';
import type { ComposeProject, ComposeService } from './compose.js';

/** Backend → default compose service, from the backend registry. */
export { DEFAULT_SERVICES };

/** Labels lem puts on its service containers (besides compose's). */
export const LABELS = {
  campaign: 'lem.campaign',
  backend: 'lem.backend',
  service: 'lem.service',
  workspace: 'lem.workspace',
  managed: 'lem.managed-by',
  /** The base compose project (the files' `name:`, e.g. lem) the campaign's own project derives from. */
  project: 'lem.project',
  /** sha256 of the image id and the resolved container spec: adopt only a container whose hash matches. */
  configHash: 'lem.config-hash',
  /** The GPU set a service serves (parallel GPU sets): its key, and its GPUs' UUIDs comma-separated. */
  gpuSet: 'lem.gpu-set',
  gpus: 'lem.gpus',
} as const;

/** A service bound to one GPU set: DeviceRequests name exactly its GPUs (none when they are fake). */
export interface GpuSetSpec {
  key: string;
  /** GPU UUIDs (or indices when UUIDs are unknown). */
  gpus: string[];
  /** A fake GPU list (tests): no device request, only the label and LEM_GPU_UUIDS. */
  fake: boolean;
}

/**
 * The device ids the worker locks and records for a GPU set without NVML (a fake list): UUIDs as
 * they are; an index, which is not unique across hosts, as `<host>:<index>`.
 */
export function lockIds(set: GpuSetSpec): string[] {
  const host = set.key.split('/')[0] ?? '';
  return set.gpus.map((g) => (/^(GPU|MIG)-/.test(g) ? g : `${host}:${g}`));
}

/** The container-name part of a GPU set key (`local/0-1` → `g-local-0-1`). */
export function gpuSetSlug(key: string): string {
  return `g-${key.toLowerCase().replace(/[^a-z0-9_-]+/g, '-')}`;
}

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

/** Where a campaign's run directories live; the only host directory mounted read-write. */
export function campaignRunsDir(ctx: Pick<RuntimeContext, 'workspaceRoot' | 'campaignId'>): string {
  return join(ctx.workspaceRoot, 'runs', ctx.campaignId);
}

/**
 * The compose project of one campaign's services: `<base>-<campaign id>` in compose's alphabet
 * (lowercase letters, digits, `-`, `_`). An id that had to be changed to fit, or a long one, is
 * shortened and suffixed with 8 hex of its sha256, so two campaigns never share a project.
 */
export function campaignProjectName(base: string, campaignId: string): string {
  const lower = campaignId.toLowerCase();
  const slug = lower.replace(/[^a-z0-9_-]+/g, '-').replace(/^[-_]+/, '');
  if (slug === campaignId && slug.length <= 40) return `${base}-${slug}`;
  const hash = createHash('sha256').update(campaignId).digest('hex').slice(0, 8);
  return `${base}-${slug.slice(0, 31).replace(/[-_]+$/, '')}-${hash}`;
}

/** GPU request override: 'compose' (what the compose file reserves), 'none', 'all', or device ids. */
export type GpuChoice = 'compose' | 'none' | 'all' | string[];

export function deviceRequests(def: ComposeService, gpus: GpuChoice): Docker.DeviceRequest[] {
  if (gpus === 'none') return [];
  if (gpus === 'all') return [{ Driver: 'nvidia', Count: -1, Capabilities: [['gpu']] }];
  if (Array.isArray(gpus)) return [{ Driver: 'nvidia', DeviceIDs: gpus, Capabilities: [['gpu']] }];
  return def.devices.map((d) => ({
    Driver: d.driver,
    ...(d.deviceIds.length > 0 ? { DeviceIDs: d.deviceIds } : { Count: d.count }),
    // A CDI request (driver cdi) names its devices and has no capabilities.
    ...(d.capabilities.length > 0 ? { Capabilities: [d.capabilities] } : {}),
    Options: d.options,
  }));
}

/** Everything a container spec depends on besides the service itself. */
export interface SpecInput {
  /** The base project (the files' `name:`); the container's project is campaignProjectName of it. */
  project: ComposeProject;
  ctx: RuntimeContext;
  imageId: string;
  number: number;
  hfHome: string;
  gpus: GpuChoice;
  init: boolean;
  /** Host path of images/worker to mount over the image's copy, or null. */
  workerMount: string | null;
  /** `uid:gid` the container (and every exec in it) runs as; null: the image's user. */
  user: string | null;
  /** Mount the Hugging Face cache read-write (a download is needed); otherwise read-only and offline. */
  hfWritable: boolean;
  /** The image sets no HOME: give the container HOME=/tmp so a uid without a passwd entry has one. */
  needsHome: boolean;
  /** Further host binds (`src:dst[:opts]`) every service container gets, e.g. a device-lock directory. */
  extraBinds: readonly string[];
  /** The GPU set this service serves, or absent: the service as the compose file (or `gpus`) says. */
  gpuSet?: GpuSetSpec | null;
  /**
   * A remote engine (no shared filesystem): named volumes on its host instead of any bind of the
   * controller's paths — the campaign's runs directory (at the same path) and the device locks.
   */
  remoteVolumes?: RemoteVolumes | null;
}

export interface RemoteVolumes {
  /** Named volume holding the campaign's run directories until their results are fetched. */
  runs: string;
  /** Named volume shared by every service on the host for the device locks, and where it is mounted. */
  locks: string;
  locksAt: string;
}

/** The named volumes of a campaign on a remote host. */
export function remoteVolumesFor(campaignId: string): RemoteVolumes {
  return { runs: `lem-runs-${campaignProjectName('c', campaignId).slice(2)}`, locks: 'lem-device-locks', locksAt: REMOTE_LOCKS_AT };
}

/** Where a remote service mounts the host's device-lock volume; LEM_LOCK_DIR is its `locks` subdirectory. */
export const REMOTE_LOCKS_AT = '/var/lib/lem-locks';

/** The configuration hash: the image id and everything in the spec but its name and labels. */
export function configHash(imageId: string, spec: Docker.ContainerCreateOptions): string {
  const { name: _name, Labels: _labels, ...rest } = spec;
  return createHash('sha256').update(JSON.stringify({ imageId, ...rest })).digest('hex');
}

export function containerSpec(state: ServiceDef, input: SpecInput): Docker.ContainerCreateOptions {
  const { def } = state;
  const { project, ctx: c, imageId, number, hfHome: hf } = input;
  const runs = campaignRunsDir(c);
  const rv = input.remoteVolumes ?? null;
  const binds = rv
    ? [`${rv.runs}:${runs}`, `${rv.locks}:${rv.locksAt}`]
    : [`${runs}:${runs}`, `${hf}:${hf}${input.hfWritable ? '' : ':ro'}`, ...input.extraBinds];
  if (input.workerMount && !rv) binds.push(`${input.workerMount}:${WORKER_MOUNT}:ro`);
  const tmpfs: Record<string, string> = {};
  for (const v of def.volumes) {
    if (v.type === 'tmpfs') tmpfs[v.target] = '';
    else if (!rv || !v.source.startsWith('/')) binds.push(`${v.source}:${v.target}${v.readOnly ? ':ro' : ''}`);
  }
  const envList = Object.entries({
    ...def.environment,
    HF_HOME: hf,
    ...(input.hfWritable ? {} : { HF_HUB_OFFLINE: '1' }),
    ...(input.needsHome ? { HOME: '/tmp' } : {}),
    PYTHONUNBUFFERED: '1',
    ...(input.gpuSet ? { LEM_GPU_UUIDS: lockIds(input.gpuSet).join(',') } : {}),
  }).map(([k, v]) => `${k}=${v}`);
  const hostConfig: Docker.HostConfig = {
    Binds: binds,
    Init: input.init,
    DeviceRequests: input.gpuSet ? (input.gpuSet.fake ? [] : deviceRequests(def, input.gpuSet.gpus)) : deviceRequests(def, input.gpus),
    RestartPolicy: { Name: 'no' },
    NetworkMode: def.networkMode ?? 'bridge',
    // Never privileged, whatever the compose file says: security_opt may only add confinement options.
    Privileged: false,
    ...(Object.keys(tmpfs).length > 0 ? { Tmpfs: tmpfs } : {}),
    ...(def.shmSize !== null ? { ShmSize: def.shmSize } : {}),
    ...(def.ipc !== null ? { IpcMode: def.ipc } : {}),
    ...(def.ulimits.length > 0 ? { Ulimits: def.ulimits.map((u) => ({ Name: u.name, Soft: u.soft, Hard: u.hard })) } : {}),
    ...(def.cpuset !== null ? { CpusetCpus: def.cpuset } : {}),
    ...(def.runtime !== null ? { Runtime: def.runtime } : {}),
    ...(def.deviceMappings.length > 0 ? { Devices: def.deviceMappings.map((d) => ({ PathOnHost: d.pathOnHost, PathInContainer: d.pathInContainer, CgroupPermissions: d.permissions })) } : {}),
    ...(def.groupAdd.length > 0 ? { GroupAdd: def.groupAdd } : {}),
    ...(def.securityOpt.length > 0 ? { SecurityOpt: def.securityOpt } : {}),
  };
  const projectName = campaignProjectName(project.name, c.campaignId);
  const spec: Docker.ContainerCreateOptions = {
    name: `${projectName}-${state.name}-${input.gpuSet ? `${gpuSetSlug(input.gpuSet.key)}-` : ''}${number}`,
    Image: def.image,
    Entrypoint: ['sh', '-c', IDLE_COMMAND, 'lem-idle'],
    Cmd: [],
    Env: envList,
    WorkingDir: runs,
    ...(input.user ? { User: input.user } : {}),
    HostConfig: hostConfig,
  };
  const hash = configHash(imageId, spec);
  spec.Labels = {
    [COMPOSE.project]: projectName,
    [COMPOSE.service]: state.name,
    [COMPOSE.oneoff]: 'False',
    [COMPOSE.number]: String(number),
    [COMPOSE.workingDir]: project.workingDir,
    [COMPOSE.configFiles]: project.files.join(','),
    [COMPOSE.configHash]: hash,
    [COMPOSE.image]: imageId,
    [LABELS.campaign]: c.campaignId,
    [LABELS.backend]: [...state.backends].sort().join(','),
    [LABELS.service]: state.name,
    [LABELS.workspace]: c.workspaceRoot,
    [LABELS.managed]: 'lem',
    [LABELS.project]: project.name,
    [LABELS.configHash]: hash,
    ...(input.gpuSet ? { [LABELS.gpuSet]: input.gpuSet.key, [LABELS.gpus]: input.gpuSet.gpus.join(',') } : {}),
  };
  return spec;
}
