/**
 * The subset of the compose format lem supports: what a file may say (the zod schema each file is
 * checked against, and lem's messages for what it refuses) and what lem makes of a service
 * (ComposeService and its parts). Reading one file is compose-file.ts; loading and merging the
 * files of a project is compose.ts.
 */
import { z } from 'zod';

/** Fields lem accepts in a service, in the order the error message lists them. */
export const SUPPORTED_SERVICE_FIELDS = [
  'image',
  'build',
  'environment',
  'volumes',
  'env_file',
  'shm_size',
  'ipc',
  'ulimits',
  'cpuset',
  'runtime',
  'network_mode',
  'devices',
  'group_add',
  'security_opt',
  'deploy.resources.reservations.devices',
] as const;

// --- what lem makes of a service ------------------------------------------------------------

export interface ComposeBuild {
  /** Absolute build context directory. */
  context: string;
  /** Dockerfile path relative to the context. */
  dockerfile: string;
  args: Record<string, string>;
}

export interface ComposeMount {
  type: 'bind' | 'volume' | 'tmpfs';
  /** Absolute host path (bind), volume name (volume), empty (tmpfs). */
  source: string;
  target: string;
  readOnly: boolean;
}

export interface ComposeDeviceRequest {
  driver: string;
  /** -1 = all. Ignored when deviceIds is set. */
  count: number;
  deviceIds: string[];
  capabilities: string[];
  options: Record<string, string>;
}

export interface ComposeUlimit {
  name: string;
  soft: number;
  hard: number;
}

/** A host device node mapped into the container (`devices:`), as HostConfig.Devices takes it. */
export interface ComposeDeviceMapping {
  pathOnHost: string;
  pathInContainer: string;
  /** cgroup permissions, e.g. rwm. */
  permissions: string;
}

export interface ComposeService {
  name: string;
  image: string;
  build: ComposeBuild | null;
  /** env_file values first, `environment:` over them (as compose). */
  environment: Record<string, string>;
  volumes: ComposeMount[];
  shmSize: number | null;
  ipc: string | null;
  ulimits: ComposeUlimit[];
  /** Device requests: deploy.resources.reservations.devices, and CDI names from `devices:`. */
  devices: ComposeDeviceRequest[];
  /** `cpuset:` → HostConfig.CpusetCpus. */
  cpuset: string | null;
  /** `runtime:` (e.g. nvidia) → HostConfig.Runtime. */
  runtime: string | null;
  /** `network_mode:` → HostConfig.NetworkMode; null: lem's default, bridge. */
  networkMode: string | null;
  /** `devices:` host device nodes → HostConfig.Devices. */
  deviceMappings: ComposeDeviceMapping[];
  /** `group_add:` → HostConfig.GroupAdd (supplementary groups of the container's non-root user). */
  groupAdd: string[];
  /** `security_opt:` → HostConfig.SecurityOpt (added to lem's hardening; never privileged). */
  securityOpt: string[];
}

// --- what a file may say --------------------------------------------------------------------

const ScalarValue = z.union([z.string(), z.number(), z.boolean(), z.null()]);
const KeyValues = z.union([z.record(z.string(), ScalarValue), z.array(z.string())]);
const Int = z.number().int();
/** environment and build.args: a mapping or a list of KEY=VALUE strings. */
export type KeyValueList = z.infer<typeof KeyValues>;

const BuildSchema = z.union([
  z.string().min(1),
  z.strictObject({
    context: z.string().min(1).optional(),
    dockerfile: z.string().min(1).optional(),
    args: KeyValues.optional(),
  }),
]);

const VolumeSchema = z.union([
  z.string().min(1),
  z.strictObject({
    type: z.enum(['bind', 'volume', 'tmpfs']).optional(),
    source: z.string().optional(),
    target: z.string().min(1),
    read_only: z.boolean().optional(),
  }),
]);

const DeviceSchema = z.strictObject({
  driver: z.string().min(1).optional(),
  count: z.union([z.literal('all'), Int.nonnegative()]).optional(),
  device_ids: z.array(z.union([z.string(), Int])).optional(),
  capabilities: z.array(z.string().min(1)).min(1),
  options: z.record(z.string(), z.string()).optional(),
});

const EnvFileSchema = z.union([
  z.string().min(1),
  z.array(z.union([z.string().min(1), z.strictObject({ path: z.string().min(1), required: z.boolean().optional() })])),
]);

const DeviceMappingSchema = z.union([
  z.string().min(1),
  z.strictObject({ source: z.string().min(1), target: z.string().min(1).optional(), permissions: z.string().regex(/^[rwm]+$/, 'cgroup permissions: r, w and/or m').optional() }),
]);

/** network_mode values lem can honour on its own (compose's `service:NAME` needs compose's ordering). */
const NetworkModeSchema = z.string().regex(/^(bridge|host|none|default|container:.+)$/, 'network_mode: bridge, host, none or container:NAME (service:NAME is not supported by lem)');

/**
 * security_opt adds confinement options (seccomp, apparmor, label, no-new-privileges); it never
 * loosens lem's hardening beyond them: `systempaths=unconfined` (unmasks /proc and /sys) is refused,
 * and `privileged`/`cap_add` stay unsupported fields.
 */
const SecurityOptSchema = z
  .string()
  .regex(
    /^(seccomp[=:].+|apparmor[=:].+|label[=:].+|no-new-privileges([=:](true|false))?)$/,
    'security_opt: seccomp=…, apparmor=…, label=… or no-new-privileges[=true|false] (lem never runs a service privileged; systempaths=unconfined is refused)',
  );

const ServiceSchema = z.strictObject({
  image: z.string().min(1).optional(),
  build: BuildSchema.optional(),
  environment: KeyValues.optional(),
  env_file: EnvFileSchema.optional(),
  cpuset: z.union([z.string().regex(/^\d+(-\d+)?(,\d+(-\d+)?)*$/, 'cpuset: CPU numbers and ranges, e.g. 0-3 or 0,2,4'), Int.nonnegative()]).optional(),
  runtime: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'runtime: a runtime name such as nvidia or runc').optional(),
  network_mode: NetworkModeSchema.optional(),
  devices: z.array(DeviceMappingSchema).optional(),
  group_add: z.array(z.union([z.string().min(1), Int.nonnegative()])).optional(),
  security_opt: z.array(SecurityOptSchema).optional(),
  volumes: z.array(VolumeSchema).optional(),
  shm_size: z.union([z.string().min(1), Int.positive()]).optional(),
  ipc: z.string().min(1).optional(),
  ulimits: z.record(z.string(), z.union([Int, z.strictObject({ soft: Int, hard: Int })])).optional(),
  deploy: z
    .strictObject({
      resources: z
        .strictObject({
          reservations: z.strictObject({ devices: z.array(DeviceSchema).optional() }).optional(),
        })
        .optional(),
    })
    .optional(),
});
/** One service as a file states it (validated, before normalising). */
export type ServiceFile = z.infer<typeof ServiceSchema>;

const FileSchema = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, 'a compose project name: lowercase letters, digits, _ and -').optional(),
  services: z.record(z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/, 'a service name'), ServiceSchema.nullable()).optional(),
});

type ComposeFile = z.infer<typeof FileSchema>;

/** A node path as messages name it: services.pytorch.volumes.0. */
export function dotted(path: readonly PropertyKey[]): string {
  return path.map(String).join('.');
}

/**
 * Checks one file (interpolated, !reset/!override markers removed) against the supported subset.
 * A refusal gives the path of the offending node and lem's message for it.
 */
export function checkComposeFile(value: unknown): { ok: true; data: ComposeFile } | { ok: false; path: PropertyKey[]; problem: string } {
  const parsed = FileSchema.safeParse(value);
  if (parsed.success) return { ok: true, data: parsed.data };
  const issue = parsed.error.issues[0];
  if (!issue) return { ok: false, path: [], problem: 'invalid compose file' };
  const path = issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p));
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0] ?? '';
    const full = [...path, key];
    if (path.length === 0) {
      return { ok: false, path: full, problem: `top-level field '${key}' is not supported by lem (supported: name, services, x-*)` };
    }
    const inService = path[0] === 'services' && path.length >= 2;
    const fieldInService = dotted(full.slice(2));
    return {
      ok: false,
      path: full,
      problem: inService
        ? `service field '${fieldInService}' is not supported by lem; a service may only use ${SUPPORTED_SERVICE_FIELDS.join(', ')}`
        : `field '${key}' is not supported by lem`,
    };
  }
  return { ok: false, path, problem: issue.message };
}
