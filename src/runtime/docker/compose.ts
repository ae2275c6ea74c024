/**
 * lem's reading of docker-compose.yml (+ override files such as compose/cpu-only.yml).
 *
 * lem creates the backend containers itself through the engine API, so it reads the compose files
 * itself too, and only the subset it can honour faithfully. A service may use: image, build
 * (context, dockerfile, args), environment, volumes, shm_size, ipc, ulimits and
 * deploy.resources.reservations.devices. Any other field is refused with an error naming the file,
 * line and field, rather than silently ignored. Top-level `name`, `services` and `x-*` extension
 * fields (for YAML anchors) are accepted; `x-*` fields inside a service are ignored like compose.
 *
 * Several files merge like `docker compose -f a.yml -f b.yml`: mappings merge, scalars replace,
 * environment/ulimits/build.args merge by key, volumes by container path, device requests append;
 * `!reset` removes a field and `!override` replaces it wholesale. `${VAR}`, `${VAR:-default}`,
 * `${VAR-default}`, `${VAR:?message}`, `$VAR` and `$$` are interpolated from the environment.
 * Relative paths resolve against the first file's directory (the project directory), as in compose.
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, isAbsolute, resolve } from 'node:path';
import { LineCounter, parseDocument, YAMLMap, YAMLSeq, isNode, type Document } from 'yaml';
import type { CollectionTag, ScalarTag } from 'yaml';
import { z } from 'zod';
import { ConfigError } from '../../util/errors.js';

/** Fields lem accepts in a service, in the order the error message lists them. */
export const SUPPORTED_SERVICE_FIELDS = [
  'image',
  'build',
  'environment',
  'volumes',
  'shm_size',
  'ipc',
  'ulimits',
  'deploy.resources.reservations.devices',
] as const;

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

export interface ComposeService {
  name: string;
  image: string;
  build: ComposeBuild | null;
  environment: Record<string, string>;
  volumes: ComposeMount[];
  shmSize: number | null;
  ipc: string | null;
  ulimits: ComposeUlimit[];
  devices: ComposeDeviceRequest[];
}

export interface ComposeProject {
  /** The compose project name (`name:` in the first file that sets it, else the directory name). */
  name: string;
  /** The project directory (first file's directory). */
  workingDir: string;
  /** Absolute paths of the files read, in merge order. */
  files: string[];
  services: Record<string, ComposeService>;
}

// --- YAML: !reset / !override ---------------------------------------------------------------

class Reset {
  readonly lemComposeReset = true;
}
class Override {
  constructor(readonly value: unknown) {}
}

const resetTags: (ScalarTag | CollectionTag)[] = [
  { tag: '!reset', collection: 'map', nodeClass: YAMLMap, resolve: () => new Reset() } as CollectionTag,
  { tag: '!reset', collection: 'seq', nodeClass: YAMLSeq, resolve: () => new Reset() } as CollectionTag,
  { tag: '!reset', resolve: () => new Reset() } as ScalarTag,
  {
    tag: '!override',
    collection: 'map',
    nodeClass: YAMLMap,
    resolve: (m: YAMLMap) => new Override(m.toJSON()),
  } as unknown as CollectionTag,
  {
    tag: '!override',
    collection: 'seq',
    nodeClass: YAMLSeq,
    resolve: (s: YAMLSeq) => new Override(s.toJSON()),
  } as unknown as CollectionTag,
  { tag: '!override', resolve: (s: string) => new Override(s) } as ScalarTag,
];

// --- per-file schema --------------------------------------------------------------------------

const ScalarValue = z.union([z.string(), z.number(), z.boolean(), z.null()]);
const KeyValues = z.union([z.record(z.string(), ScalarValue), z.array(z.string())]);
const Int = z.number().int();

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

const ServiceSchema = z.strictObject({
  image: z.string().min(1).optional(),
  build: BuildSchema.optional(),
  environment: KeyValues.optional(),
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
type ServiceFile = z.infer<typeof ServiceSchema>;

const FileSchema = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, 'a compose project name: lowercase letters, digits, _ and -').optional(),
  services: z.record(z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/, 'a service name'), ServiceSchema.nullable()).optional(),
});

// --- helpers ----------------------------------------------------------------------------------

type Json = string | number | boolean | null | Json[] | { [k: string]: Json } | Reset | Override;
type Obj = { [k: string]: Json };

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Reset) && !(v instanceof Override);
}

/** A copy without the !reset / !override markers: what a file says on its own, for validation. */
function unmark(v: Json): Json | undefined {
  if (v instanceof Reset) return undefined;
  if (v instanceof Override) return unmark(v.value as Json);
  if (Array.isArray(v)) return v.map((x) => unmark(x) ?? null);
  if (isObj(v)) {
    const out: Obj = {};
    for (const [k, x] of Object.entries(v)) {
      const u = unmark(x);
      if (u !== undefined) out[k] = u;
    }
    return out;
  }
  return v;
}

/** Compose-style interpolation of one string. */
export function interpolate(s: string, env: NodeJS.ProcessEnv, where: () => string): string {
  return s.replace(/\$(?:\$|\{([^}]*)\}|([A-Za-z_][A-Za-z0-9_]*))/g, (whole, braced: string | undefined, bare: string | undefined) => {
    if (whole === '$$') return '$';
    if (bare !== undefined) return env[bare] ?? '';
    const expr = braced ?? '';
    const m = /^([A-Za-z_][A-Za-z0-9_]*)(?:(:?)([-?+])(.*))?$/s.exec(expr);
    if (!m) throw new Error(`${where()}: invalid interpolation \${${expr}}`);
    const [, name = '', colon, op, arg = ''] = m;
    const value = env[name];
    const unset = colon === ':' ? value === undefined || value === '' : value === undefined;
    switch (op) {
      case undefined:
        return value ?? '';
      case '-':
        return unset ? arg : (value ?? '');
      case '+':
        return unset ? '' : arg;
      case '?':
        if (unset) throw new Error(`${where()}: required variable ${name} is not set${arg ? `: ${arg}` : ''}`);
        return value ?? '';
      default:
        return value ?? '';
    }
  });
}

function interpolateAll(v: Json, env: NodeJS.ProcessEnv, where: (path: string[]) => string, path: string[] = []): Json {
  if (typeof v === 'string') return interpolate(v, env, () => where(path));
  if (v instanceof Override) return new Override(interpolateAll(v.value as Json, env, where, path));
  if (Array.isArray(v)) return v.map((x, i) => interpolateAll(x, env, where, [...path, String(i)]));
  if (isObj(v)) {
    const out: Obj = {};
    for (const [k, x] of Object.entries(v)) out[k] = interpolateAll(x, env, where, [...path, k]);
    return out;
  }
  return v;
}

function locate(
  doc: Document,
  lc: LineCounter,
  file: string,
  path: readonly PropertyKey[],
): { file: string; line: number; column: number } | { file: string; line?: undefined; column?: undefined } {
  // Walk up until a node with a position is found (a key refused inside a merged anchor has none).
  for (let n = path.length; n >= 0; n--) {
    const p = path.slice(0, n);
    const parent = n > 0 ? doc.getIn(p.slice(0, -1), true) : null;
    // Prefer the key's own position for the last segment.
    if (n > 0 && parent instanceof YAMLMap) {
      const pair = parent.items.find((it) => isNode(it.key) && (it.key as { value?: unknown }).value === p[p.length - 1]);
      const range = pair && isNode(pair.key) ? pair.key.range : undefined;
      if (range) {
        const pos = lc.linePos(range[0]);
        return { file, line: pos.line, column: pos.col };
      }
    }
    const node = doc.getIn(p, true);
    if (isNode(node) && node.range) {
      const pos = lc.linePos(node.range[0]);
      return { file, line: pos.line, column: pos.col };
    }
  }
  return { file };
}

function dotted(path: readonly PropertyKey[]): string {
  return path.map(String).join('.');
}

function stringMap(v: z.infer<typeof KeyValues> | undefined, env: NodeJS.ProcessEnv, passThrough: boolean): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  if (v === undefined) return out;
  if (Array.isArray(v)) {
    for (const item of v) {
      const eq = item.indexOf('=');
      if (eq < 0) out[item] = passThrough ? (env[item] ?? null) : null;
      else out[item.slice(0, eq)] = item.slice(eq + 1);
    }
  } else {
    for (const [k, x] of Object.entries(v)) {
      out[k] = x === null ? (passThrough ? (env[k] ?? null) : null) : String(x);
    }
  }
  return out;
}

function expandHome(p: string): string {
  if (p === '~') return homedir();
  if (p.startsWith('~/')) return resolve(homedir(), p.slice(2));
  return p;
}

function hostPath(p: string, projectDir: string): string {
  const e = expandHome(p);
  return isAbsolute(e) ? e : resolve(projectDir, e);
}

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, m: 1024 ** 2, mb: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3 };

/** "8gb", "64m", "1g", 1073741824 → bytes. */
export function parseByteSize(v: string | number): number | null {
  if (typeof v === 'number') return v;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(v);
  if (!m) return null;
  const unit = SIZE_UNITS[(m[2] ?? '').toLowerCase()];
  if (unit === undefined) return null;
  return Math.round(Number(m[1]) * unit);
}

/** Normalised, per-file form of a service, ready to merge. Markers survive on the fields. */
interface NormService {
  image?: string | Reset | Override;
  build?: Obj | Reset | Override;
  environment?: Obj | Reset | Override;
  volumes?: Obj | Reset | Override;
  shm_size?: number | Reset | Override;
  ipc?: string | Reset | Override;
  ulimits?: Obj | Reset | Override;
  devices?: Json[] | Reset | Override;
}

function parseVolume(v: string | { type?: 'bind' | 'volume' | 'tmpfs' | undefined; source?: string | undefined; target: string; read_only?: boolean | undefined }, projectDir: string): ComposeMount | string {
  if (typeof v !== 'string') {
    const type = v.type ?? 'bind';
    if (type !== 'tmpfs' && !v.source) return `a ${type} mount needs a source`;
    const source = type === 'bind' ? hostPath(v.source ?? '', projectDir) : (v.source ?? '');
    return { type, source, target: v.target, readOnly: v.read_only ?? false };
  }
  const parts = v.split(':');
  if (parts.length === 1) return `anonymous volume "${v}" is not supported; give host-path:container-path`;
  if (parts.length > 3) return `cannot read volume "${v}"; expected source:target[:ro|rw]`;
  const [src = '', target = '', mode] = parts;
  if (mode !== undefined && mode !== 'ro' && mode !== 'rw') return `volume "${v}": mode must be ro or rw`;
  const isPath = src.startsWith('/') || src.startsWith('.') || src.startsWith('~');
  return {
    type: isPath ? 'bind' : 'volume',
    source: isPath ? hostPath(src, projectDir) : src,
    target,
    readOnly: mode === 'ro',
  };
}

function normaliseService(
  raw: Obj,
  validated: ServiceFile,
  env: NodeJS.ProcessEnv,
  projectDir: string,
  fail: (path: string[], problem: string) => never,
): NormService {
  const out: NormService = {};
  const marker = (k: string): Reset | Override | null => {
    const v = raw[k];
    return v instanceof Reset || v instanceof Override ? v : null;
  };
  const wrap = <T>(k: string, value: T): T | Reset | Override => {
    const m = marker(k);
    if (m instanceof Reset) return m;
    if (m instanceof Override) return new Override(value);
    return value;
  };
  if (raw['image'] !== undefined) out.image = wrap('image', validated.image ?? '');
  if (raw['build'] !== undefined) {
    const b = validated.build;
    const o: Obj = {};
    if (typeof b === 'string') o['context'] = hostPath(b, projectDir);
    else if (b) {
      if (b.context !== undefined) o['context'] = hostPath(b.context, projectDir);
      if (b.dockerfile !== undefined) o['dockerfile'] = b.dockerfile;
      if (b.args !== undefined) o['args'] = stringMap(b.args, env, true);
    }
    out.build = wrap('build', o);
  }
  if (raw['environment'] !== undefined) out.environment = wrap('environment', stringMap(validated.environment, env, true));
  if (raw['volumes'] !== undefined) {
    const byTarget: Obj = {};
    (validated.volumes ?? []).forEach((v, i) => {
      const m = parseVolume(v, projectDir);
      if (typeof m === 'string') fail(['volumes', String(i)], m);
      byTarget[m.target] = { type: m.type, source: m.source, target: m.target, readOnly: m.readOnly };
    });
    out.volumes = wrap('volumes', byTarget);
  }
  if (raw['shm_size'] !== undefined && validated.shm_size !== undefined) {
    const bytes = parseByteSize(validated.shm_size);
    if (bytes === null) fail(['shm_size'], `cannot read size "${validated.shm_size}"; use e.g. 8gb, 512m or a byte count`);
    out.shm_size = wrap('shm_size', bytes);
  } else if (marker('shm_size')) out.shm_size = marker('shm_size') ?? undefined;
  if (raw['ipc'] !== undefined) out.ipc = wrap('ipc', validated.ipc ?? '');
  if (raw['ulimits'] !== undefined) {
    const u: Obj = {};
    for (const [name, v] of Object.entries(validated.ulimits ?? {})) {
      u[name] = typeof v === 'number' ? { soft: v, hard: v } : { soft: v.soft, hard: v.hard };
    }
    out.ulimits = wrap('ulimits', u);
  }
  const deploy = raw['deploy'];
  if (deploy !== undefined) {
    // Markers may sit on deploy, resources, reservations or devices; any of them resets/overrides devices.
    let m: Reset | Override | null = deploy instanceof Reset || deploy instanceof Override ? deploy : null;
    let node: Json | undefined = deploy instanceof Override ? (deploy.value as Json) : deploy;
    for (const key of ['resources', 'reservations', 'devices']) {
      if (!isObj(node)) break;
      const next: Json | undefined = node[key];
      if (next instanceof Reset) m = next;
      else if (next instanceof Override && !(m instanceof Reset)) m = new Override(null);
      node = next instanceof Override ? (next.value as Json) : next;
    }
    const devices: Json[] = (validated.deploy?.resources?.reservations?.devices ?? []).map((d) => ({
      driver: d.driver ?? 'nvidia',
      count: d.device_ids !== undefined ? 0 : d.count === undefined || d.count === 'all' ? -1 : d.count,
      deviceIds: (d.device_ids ?? []).map(String),
      capabilities: d.capabilities,
      options: d.options ?? {},
    }));
    out.devices = m instanceof Reset ? m : m instanceof Override ? new Override(devices) : devices;
  }
  return out;
}

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

// --- entry points -----------------------------------------------------------------------------

interface ParsedFile {
  file: string;
  name: string | undefined;
  services: Record<string, NormService | null>;
}

function parseFile(file: string, text: string, env: NodeJS.ProcessEnv, projectDir: string): ParsedFile {
  const lc = new LineCounter();
  const doc = parseDocument(text, { merge: true, customTags: resetTags, lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    const pos = e?.linePos?.[0];
    throw new ConfigError(pos ? { file, line: pos.line, column: pos.col } : { file }, null, `not valid YAML: ${e?.message.split('\n')[0] ?? 'parse error'}`);
  }
  function fail(path: readonly PropertyKey[], problem: string): never {
    throw new ConfigError(locate(doc, lc, file, path), path.length ? dotted(path) : null, problem);
  }
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 1000 });
  } catch (err) {
    fail([], `cannot read: ${(err as Error).message}`);
  }
  if (raw === null || raw === undefined) return { file, name: undefined, services: {} };
  if (!isObj(raw)) fail([], 'expected a mapping with a `services:` key');
  const top = raw as Obj;

  // x-* extension fields: allowed at the top level and inside services, ignored.
  const topClean: Obj = {};
  for (const [k, v] of Object.entries(top)) if (!k.startsWith('x-')) topClean[k] = v;
  const servicesRaw = topClean['services'];
  if (isObj(servicesRaw)) {
    for (const [svc, def] of Object.entries(servicesRaw)) {
      if (isObj(def)) {
        const clean: Obj = {};
        for (const [k, v] of Object.entries(def)) if (!k.startsWith('x-')) clean[k] = v;
        servicesRaw[svc] = clean;
      }
    }
  }

  let interpolated: Json;
  try {
    interpolated = interpolateAll(topClean, env, (p) => `${file}: ${dotted(p)}`);
  } catch (err) {
    throw new ConfigError({ file }, null, (err as Error).message.replace(`${file}: `, ''));
  }
  const parsed = FileSchema.safeParse(unmark(interpolated));
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    if (!issue) fail([], 'invalid compose file');
    const path = issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p));
    if (issue.code === 'unrecognized_keys') {
      const key = issue.keys[0] ?? '';
      const full = [...path, key];
      if (path.length === 0) {
        fail(full, `top-level field '${key}' is not supported by lem (supported: name, services, x-*)`);
      }
      const inService = path[0] === 'services' && path.length >= 2;
      const fieldInService = dotted(full.slice(2));
      fail(
        full,
        inService
          ? `service field '${fieldInService}' is not supported by lem; a service may only use ${SUPPORTED_SERVICE_FIELDS.join(', ')}`
          : `field '${key}' is not supported by lem`,
      );
    }
    fail(path, issue.message);
  }
  const data = parsed.data;
  const services: Record<string, NormService | null> = {};
  const rawServices = isObj(interpolated) && isObj(interpolated['services']) ? interpolated['services'] : {};
  for (const [svc, def] of Object.entries(rawServices)) if (def instanceof Reset) services[svc] = null;
  for (const [svc, def] of Object.entries(data.services ?? {})) {
    const rawDef = rawServices[svc];
    if (def === null || !isObj(rawDef)) {
      services[svc] = rawDef instanceof Reset ? null : {};
      continue;
    }
    services[svc] = normaliseService(rawDef, def, env, projectDir, (p, problem) => fail(['services', svc, ...p], problem));
  }
  return { file, name: data.name, services };
}

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
  const env = opts.env ?? process.env;
  const abs = files.map((f) => resolve(f));
  const projectDir = dirname(abs[0] ?? '.');
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
        const m = mergeValue(base[k], v, k === 'devices');
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
      devices: Array.isArray(def['devices']) ? (def['devices'] as unknown as ComposeDeviceRequest[]) : [],
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
