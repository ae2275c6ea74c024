/**
 * Reading one compose file into its normalised, per-file form, ready to merge with the others:
 * YAML with compose's `!reset` / `!override` tags (kept as markers for the merge), `x-*` fields
 * dropped, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?message}`, `$VAR` and `$$`
 * interpolated from the environment, the file checked against the supported subset
 * (compose-schema.ts), and each service normalised: paths made absolute against the project
 * directory, sizes in bytes, volumes keyed by container path. A refusal is a ConfigError naming
 * the file, line and field.
 */
import { homedir } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import { LineCounter, parseDocument, YAMLMap, isNode, type Document } from 'yaml';
import { ConfigError } from '../../util/errors.js';
import { normaliseHostFields, type HostFields } from './compose-host.js';
import { isObj, Override, Reset, resetTags, unmark, type Json, type Obj } from './compose-markers.js';
import { checkComposeFile, dotted, type ComposeMount, type KeyValueList, type ServiceFile } from './compose-schema.js';

// --- interpolation ----------------------------------------------------------------------

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

// --- normalising a service ------------------------------------------------------------------

function stringMap(v: KeyValueList | undefined, env: NodeJS.ProcessEnv, passThrough: boolean): Record<string, string | null> {
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

export { isObj, Override, Reset, type Json, type Obj } from './compose-markers.js';

/** Normalised, per-file form of a service, ready to merge. Markers survive on the fields. */
export interface NormService extends HostFields {
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
  file: string,
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
  Object.assign(out, normaliseHostFields(raw, validated, env, file, wrap, fail));
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

// --- one file -------------------------------------------------------------------------------

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

/** One file, normalised: its project name and its services (null: `!reset` removes the service). */
export interface ParsedFile {
  file: string;
  name: string | undefined;
  services: Record<string, NormService | null>;
}

/** Reads one compose file: YAML (with !reset/!override), x-* fields dropped, interpolation, the schema, normalising. */
export function parseFile(file: string, text: string, env: NodeJS.ProcessEnv, projectDir: string): ParsedFile {
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
  const checked = checkComposeFile(unmark(interpolated));
  if (!checked.ok) fail(checked.path, checked.problem);
  const data = checked.data;
  const services: Record<string, NormService | null> = {};
  const rawServices = isObj(interpolated) && isObj(interpolated['services']) ? interpolated['services'] : {};
  for (const [svc, def] of Object.entries(rawServices)) if (def instanceof Reset) services[svc] = null;
  for (const [svc, def] of Object.entries(data.services ?? {})) {
    const rawDef = rawServices[svc];
    if (def === null || !isObj(rawDef)) {
      services[svc] = rawDef instanceof Reset ? null : {};
      continue;
    }
    services[svc] = normaliseService(rawDef, def, env, projectDir, file, (p, problem) => fail(['services', svc, ...p], problem));
  }
  return { file, name: data.name, services };
}
