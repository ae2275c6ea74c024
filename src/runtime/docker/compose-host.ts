/**
 * The host-facing service fields GPU servers' compose files use, read like compose: `devices:`
 * (host device nodes `HOST[:CONTAINER[:PERMS]]`, the long form, and CDI names such as
 * `nvidia.com/gpu=all`) and `env_file:` (KEY=VALUE files, relative to the compose file that names
 * them). Each returns a message instead of throwing; compose-file.ts turns it into a positioned
 * ConfigError.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import type { ComposeDeviceMapping, ComposeDeviceRequest } from './compose-schema.js';

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
