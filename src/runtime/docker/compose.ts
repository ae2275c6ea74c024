/**
 * lem's reading of docker-compose.yml (+ override files such as compose/cpu-only.yml).
 *
 * lem creates the backend containers itself through the engine API, so it reads the compose files
 * itself too, and only the subset it can honour faithfully. A service may use: image, build
 * (context, dockerfile, args), environment, env_file, volumes, shm_size, ipc, ulimits, cpuset,
 * runtime, network_mode, devices (host nodes and CDI names), group_add, security_opt and
 * deploy.resources.reservations.devices (see compose-host.ts for the host-facing ones). Any other field is refused with an error naming the file,
 * line and field, rather than silently ignored. Top-level `name`, `services` and `x-*` extension
 * fields (for YAML anchors) are accepted; `x-*` fields inside a service are ignored like compose.
 *
 * Several files merge like `docker compose -f a.yml -f b.yml`: mappings merge, scalars replace,
 * environment/env_file/ulimits/build.args merge by key, volumes and devices by container path,
 * device requests, group_add and security_opt append; `environment` wins over `env_file`;
 * `!reset` removes a field and `!override` replaces it wholesale. `${VAR}`, `${VAR:-default}`,
 * `${VAR-default}`, `${VAR:?message}`, `$VAR` and `$$` are interpolated from the environment.
 * Relative paths resolve against the first file's directory (the project directory), as in compose.
 *
 * This file loads the files of a project and merges them into ComposeServices. The supported
 * subset (schema, messages, the service model) is compose-schema.ts; reading one file (YAML,
 * markers, interpolation, normalising) is compose-file.ts.
 */
import { readFileSync } from 'node:fs';
import { basename, dirname, isAbsolute, resolve } from 'node:path';
import { ConfigError } from '../../util/errors.js';
import type { ComposeDeviceMapping, ComposeDeviceRequest, ComposeMount, ComposeService } from './compose-schema.js';
import { isObj, Override, parseFile, Reset, type Json, type NormService, type Obj } from './compose-file.js';
import { readVersionsEnv } from './versions.js';

export {
  SUPPORTED_SERVICE_FIELDS,
  type ComposeBuild,
  type ComposeDeviceMapping,
  type ComposeDeviceRequest,
  type ComposeMount,
  type ComposeService,
  type ComposeUlimit,
} from './compose-schema.js';
export { interpolate, parseByteSize } from './compose-file.js';

export interface ComposeProject {
  /** The compose project name (`name:` in the first file that sets it, else the directory name). */
  name: string;
  /** The project directory (first file's directory). */
  workingDir: string;
  /** Absolute paths of the files read, in merge order. */
  files: string[];
  services: Record<string, ComposeService>;
}

/** Merges one file's value for a field over what the earlier files made of it (undefined: removed). */
function mergeValue(base: Json | undefined, over: Json | Reset | Override | undefined, appendArrays: boolean): Json | undefined {
  if (over === undefined) return base;
  if (over instanceof Reset) return undefined;
  if (over instanceof Override) return over.value as Json;
  if (isObj(base) && isObj(over)) {
    const out: Obj = { ...base };
    for (const [k, v] of Object.entries(over)) {
      const merged = mergeValue(out[k], v, appendArrays);
      if (merged === undefined) delete out[k];
      else out[k] = merged;
    }
    return out;
  }
  if (appendArrays && Array.isArray(base) && Array.isArray(over)) return [...base, ...over];
  return over;
}

/** Sequences that merge by appending (compose does the same); the rest replace or merge by key. */
const APPENDED: ReadonlySet<string> = new Set(['devices', 'cdi_devices', 'group_add', 'security_opt']);

const strings = (v: Json | undefined): string[] => (Array.isArray(v) ? [...new Set(v.filter((x): x is string => typeof x === 'string'))] : []);
const text = (v: Json | undefined): string | null => (typeof v === 'string' && v !== '' ? v : null);

// --- entry points -----------------------------------------------------------------------------

export interface LoadComposeOptions {
  env?: NodeJS.ProcessEnv;
  /** Overrides the project name from the files (compose's -p). */
  projectName?: string;
}

/**
 * Reads and merges compose files (absolute or cwd-relative paths, merge order) into lem's
 * service definitions. Throws ConfigError (file:line: field: problem) on anything it refuses.
 */
export function loadCompose(files: readonly string[], opts: LoadComposeOptions = {}): ComposeProject {
  if (files.length === 0) throw new ConfigError({ file: '(none)' }, null, 'no compose file given');
  const abs = files.map((f) => resolve(f));
  const projectDir = dirname(abs[0] ?? '.');
  const env = { ...readVersionsEnv(projectDir), ...(opts.env ?? process.env) }; // like compose's .env: the environment wins
  const texts = abs.map((f) => {
    try {
      return readFileSync(f, 'utf8');
    } catch (err) {
      throw new ConfigError({ file: f }, null, `cannot read compose file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  });
  return composeFromTexts(
    abs.map((file, i) => ({ file, text: texts[i] ?? '' })),
    { ...opts, env, projectDir },
  );
}

/** As loadCompose, from texts already in memory (tests, embedded defaults). */
export function composeFromTexts(
  inputs: readonly { file: string; text: string }[],
  opts: LoadComposeOptions & { projectDir: string },
): ComposeProject {
  const env = opts.env ?? process.env;
  const parsed = inputs.map(({ file, text }) => parseFile(file, text, env, opts.projectDir));
  let name = opts.projectName;
  for (const p of parsed) if (!name && p.name) name = p.name;
  name ??= basename(opts.projectDir).toLowerCase().replace(/[^a-z0-9_-]/g, '');

  const merged: Record<string, Obj> = {};
  for (const p of parsed) {
    for (const [svc, def] of Object.entries(p.services)) {
      if (def === null) {
        delete merged[svc];
        continue;
      }
      const base: Obj = merged[svc] ?? {};
      const out: Obj = { ...base };
      for (const [k, v] of Object.entries(def) as [keyof NormService, Json | Reset | Override][]) {
        const m = mergeValue(base[k], v, APPENDED.has(k));
        if (m === undefined) delete out[k];
        else out[k] = m;
      }
      merged[svc] = out;
    }
  }

  const services: Record<string, ComposeService> = {};
  for (const [svc, def] of Object.entries(merged)) {
    const build = isObj(def['build']) ? def['build'] : null;
    const args: Record<string, string> = {};
    if (build && isObj(build['args'])) {
      for (const [k, v] of Object.entries(build['args'])) if (typeof v === 'string') args[k] = v;
    }
    const environment: Record<string, string> = {};
    if (isObj(def['env_file'])) {
      for (const [k, v] of Object.entries(def['env_file'])) if (typeof v === 'string') environment[k] = v;
    }
    if (isObj(def['environment'])) {
      for (const [k, v] of Object.entries(def['environment'])) if (typeof v === 'string') environment[k] = v;
    }
    services[svc] = {
      name: svc,
      image: typeof def['image'] === 'string' && def['image'] !== '' ? def['image'] : `${name}-${svc}`,
      build: build
        ? {
            context: typeof build['context'] === 'string' ? build['context'] : opts.projectDir,
            dockerfile: typeof build['dockerfile'] === 'string' ? build['dockerfile'] : 'Dockerfile',
            args,
          }
        : null,
      environment,
      volumes: isObj(def['volumes']) ? (Object.values(def['volumes']) as unknown as ComposeMount[]) : [],
      shmSize: typeof def['shm_size'] === 'number' ? def['shm_size'] : null,
      ipc: typeof def['ipc'] === 'string' && def['ipc'] !== '' ? def['ipc'] : null,
      ulimits: isObj(def['ulimits'])
        ? Object.entries(def['ulimits']).map(([n, v]) => {
            const o = v as { soft: number; hard: number };
            return { name: n, soft: o.soft, hard: o.hard };
          })
        : [],
      devices: [
        ...(Array.isArray(def['devices']) ? (def['devices'] as unknown as ComposeDeviceRequest[]) : []),
        ...(Array.isArray(def['cdi_devices']) ? (def['cdi_devices'] as unknown as ComposeDeviceRequest[]) : []),
      ],
      cpuset: text(def['cpuset']),
      runtime: text(def['runtime']),
      networkMode: text(def['network_mode']),
      deviceMappings: isObj(def['device_maps']) ? (Object.values(def['device_maps']) as unknown as ComposeDeviceMapping[]) : [],
      groupAdd: strings(def['group_add']),
      securityOpt: strings(def['security_opt']),
    };
  }
  return { name, workingDir: opts.projectDir, files: inputs.map((i) => i.file), services };
}

/**
 * Which compose files lem reads: LEM_COMPOSE_FILE (colon-separated, like COMPOSE_FILE) when set,
 * else docker-compose.yml in `projectDir`.
 */
export function defaultComposeFiles(projectDir: string, env: NodeJS.ProcessEnv = process.env): string[] {
  const fromEnv = env['LEM_COMPOSE_FILE'];
  if (fromEnv && fromEnv.trim() !== '') {
    return fromEnv
      .split(':')
      .filter((f) => f.trim() !== '')
      .map((f) => (isAbsolute(f) ? f : resolve(projectDir, f)));
  }
  return [resolve(projectDir, 'docker-compose.yml')];
}
