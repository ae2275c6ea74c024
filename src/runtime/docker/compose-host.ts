/**
 * The host-facing service fields GPU servers' compose files use, read like compose: `devices:`
 * (host device nodes `HOST[:CONTAINER[:PERMS]]`, the long form, and CDI names such as
 * `nvidia.com/gpu=all`) and `env_file:` (KEY=VALUE files, relative to the compose file that names
 * them), and normalising those fields with cpuset, runtime, network_mode, group_add and security_opt
 * for the merge. The parsers return a message instead of throwing; the `fail` compose-file.ts passes
 * turns it into a positioned ConfigError.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { Reset, type Json, type Obj, type Override } from './compose-markers.js';
import type { ComposeDeviceMapping, ComposeDeviceRequest, ServiceFile } from './compose-schema.js';

/** `vendor.com/class=name`: a CDI device, requested through the `cdi` driver (compose does the same). */
const CDI = /^[a-z0-9][a-z0-9.-]*\/[a-zA-Z0-9][a-zA-Z0-9._-]*=.+$/;

export type DeviceEntry = { kind: 'mapping'; mapping: ComposeDeviceMapping } | { kind: 'cdi'; request: ComposeDeviceRequest };

export function parseDeviceEntry(v: string | { source: string; target?: string | undefined; permissions?: string | undefined }): DeviceEntry | string {
  if (typeof v !== 'string') {
    if (!v.source.startsWith('/')) return `device source "${v.source}" must be an absolute path`;
    return { kind: 'mapping', mapping: { pathOnHost: v.source, pathInContainer: v.target ?? v.source, permissions: v.permissions ?? 'rwm' } };
  }
  if (CDI.test(v)) return { kind: 'cdi', request: { driver: 'cdi', count: 0, deviceIds: [v], capabilities: [], options: {} } };
  const parts = v.split(':');
  if (parts.length > 3) return `cannot read device "${v}"; expected HOST[:CONTAINER[:PERMISSIONS]] or a CDI name such as nvidia.com/gpu=all`;
  const [host = '', target, perms] = parts;
  if (!host.startsWith('/')) return `device "${v}": the host path must be absolute (or give a CDI name such as nvidia.com/gpu=all)`;
  // HOST:PERMS (two parts, the second made of r/w/m) is docker's short form too.
  if (parts.length === 2 && target !== undefined && /^[rwm]+$/.test(target)) return { kind: 'mapping', mapping: { pathOnHost: host, pathInContainer: host, permissions: target } };
  if (target !== undefined && !target.startsWith('/')) return `device "${v}": the container path must be absolute`;
  if (perms !== undefined && !/^[rwm]+$/.test(perms)) return `device "${v}": permissions must be made of r, w and m`;
  return { kind: 'mapping', mapping: { pathOnHost: host, pathInContainer: target ?? host, permissions: perms ?? 'rwm' } };
}

/** KEY=VALUE lines as compose reads them: `#` comments, blank lines, `export `, quotes stripped, a bare KEY from the environment; no interpolation. */
export function parseEnvFileText(text: string, shellEnv: NodeJS.ProcessEnv): { env: Record<string, string> } | { line: number; problem: string } {
  const env: Record<string, string> = {};
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] ?? '').trim();
    if (line === '' || line.startsWith('#')) continue;
    const body = line.startsWith('export ') ? line.slice(7).trimStart() : line;
    const eq = body.indexOf('=');
    const key = (eq < 0 ? body : body.slice(0, eq)).trim();
    if (!/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(key)) return { line: i + 1, problem: `"${line.slice(0, 60)}" is not KEY=VALUE` };
    if (eq < 0) {
      // A bare KEY takes its value from lem's environment, as compose takes it from the shell's; unset: left out.
      const fromShell = shellEnv[key];
      if (fromShell !== undefined) env[key] = fromShell;
      continue;
    }
    let value = body.slice(eq + 1).trim();
    const q = value[0];
    if ((q === '"' || q === "'") && value.length >= 2 && value.endsWith(q)) {
      value = value.slice(1, -1);
      if (q === '"') value = value.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
    } else {
      const hash = value.search(/\s#/);
      if (hash >= 0) value = value.slice(0, hash).trimEnd();
    }
    env[key] = value;
  }
  return { env };
}

/** Reads one env_file entry (relative to the compose file naming it). A missing optional file gives {}. */
export function readEnvFile(path: string, composeFile: string, required: boolean, shellEnv: NodeJS.ProcessEnv): { env: Record<string, string> } | string {
  const abs = isAbsolute(path) ? path : resolve(dirname(composeFile), path);
  let text: string;
  try {
    text = readFileSync(abs, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    if (!required && code === 'ENOENT') return { env: {} };
    return `cannot read env_file ${abs}: ${code}`;
  }
  const parsed = parseEnvFileText(text, shellEnv);
  if ('problem' in parsed) return `env_file ${abs}:${parsed.line}: ${parsed.problem}`;
  return parsed;
}

/** The host-facing fields of a service in its per-file form (markers survive, as in NormService). */
export interface HostFields {
  /** env_file's variables (all files of the entry, later over earlier), merged by key. */
  env_file?: Obj | Reset | Override;
  cpuset?: string | Reset | Override;
  runtime?: string | Reset | Override;
  network_mode?: string | Reset | Override;
  /** `devices:` host nodes keyed by container path; CDI names go to cdi_devices. */
  device_maps?: Obj | Reset | Override;
  cdi_devices?: Json[] | Reset | Override;
  group_add?: Json[] | Reset | Override;
  security_opt?: Json[] | Reset | Override;
}

/** env_file, cpuset, runtime, network_mode, devices, group_add, security_opt of one service, normalised for the merge. */
export function normaliseHostFields(
  raw: Obj,
  validated: ServiceFile,
  env: NodeJS.ProcessEnv,
  file: string,
  wrap: <T>(k: string, value: T) => T | Reset | Override,
  fail: (path: string[], problem: string) => never,
): HostFields {
  const out: HostFields = {};
  if (raw['env_file'] !== undefined && validated.env_file !== undefined) {
    const entries = typeof validated.env_file === 'string' ? [validated.env_file] : validated.env_file;
    const vars: Obj = {};
    entries.forEach((e, i) => {
      const { path, required } = typeof e === 'string' ? { path: e, required: true } : { path: e.path, required: e.required ?? true };
      const r = readEnvFile(path, file, required, env);
      if (typeof r === 'string') fail(typeof validated.env_file === 'string' ? ['env_file'] : ['env_file', String(i)], r);
      Object.assign(vars, r.env);
    });
    out.env_file = wrap('env_file', vars);
  }
  if (raw['cpuset'] !== undefined && validated.cpuset !== undefined) out.cpuset = wrap('cpuset', String(validated.cpuset));
  if (raw['runtime'] !== undefined && validated.runtime !== undefined) out.runtime = wrap('runtime', validated.runtime);
  if (raw['network_mode'] !== undefined && validated.network_mode !== undefined) out.network_mode = wrap('network_mode', validated.network_mode);
  if (raw['devices'] !== undefined) {
    const maps: Obj = {};
    const cdi: Json[] = [];
    (validated.devices ?? []).forEach((d, i) => {
      const entry = parseDeviceEntry(d);
      if (typeof entry === 'string') fail(['devices', String(i)], entry);
      if (entry.kind === 'cdi') cdi.push({ ...entry.request });
      else maps[entry.mapping.pathInContainer] = { ...entry.mapping };
    });
    out.device_maps = wrap('devices', maps);
    out.cdi_devices = wrap('devices', cdi);
  }
  if (raw['group_add'] !== undefined) out.group_add = wrap('group_add', (validated.group_add ?? []).map(String));
  if (raw['security_opt'] !== undefined) out.security_opt = wrap('security_opt', validated.security_opt ?? []);
  // `!reset` on a scalar field leaves nothing for the schema to validate: keep the marker for the merge.
  for (const k of ['env_file', 'cpuset', 'runtime', 'network_mode'] as const) {
    const m = raw[k];
    if (m instanceof Reset) out[k] = m;
  }
  return out;
}
