/**
 * Connecting to the Docker engine the way the docker CLI does:
 *
 *  1. DOCKER_HOST when set: unix:///path, tcp://host[:port], ssh://[user@]host[:port], npipe://.
 *     tcp uses TLS when DOCKER_TLS_VERIFY is non-empty (verifying the server against ca.pem) or
 *     DOCKER_TLS is non-empty, with ca.pem/cert.pem/key.pem from DOCKER_CERT_PATH (default
 *     ~/.docker); default port 2376 with TLS, 2375 without.
 *     ssh runs the system `ssh` client (so ~/.ssh/config, keys and agents work as for the CLI) with
 *     `docker system dial-stdio` on the remote side.
 *  2. Else the docker context named by DOCKER_CONTEXT or by `currentContext` in
 *     ~/.docker/config.json (DOCKER_CONFIG moves that directory), when it is not `default`.
 *  3. Else the local socket: ~/.docker/run/docker.sock if present (Docker Desktop), else
 *     /var/run/docker.sock.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { Agent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import Docker from 'dockerode';
import { LemError } from '../../util/errors.js';

export interface EngineEndpoint {
  /** What to show the user, e.g. `unix:///var/run/docker.sock`, `tcp://gpu1:2376 (TLS)`. Never holds secrets. */
  description: string;
  /** True when the engine runs on this machine (its bind-mount paths are this machine's paths). */
  local: boolean;
  options: Docker.DockerOptions;
}

function dockerConfigDir(env: NodeJS.ProcessEnv): string {
  return env['DOCKER_CONFIG'] || join(homedir(), '.docker');
}

interface ContextEndpoint {
  host: string;
  skipTlsVerify: boolean;
  tlsDir: string | null;
  name: string;
}

/** The docker context's endpoint, when a non-default context is selected. */
function contextEndpoint(env: NodeJS.ProcessEnv): ContextEndpoint | null {
  const configDir = dockerConfigDir(env);
  let name = env['DOCKER_CONTEXT'];
  if (!name) {
    try {
      const cfg = JSON.parse(readFileSync(join(configDir, 'config.json'), 'utf8')) as { currentContext?: unknown };
      if (typeof cfg.currentContext === 'string') name = cfg.currentContext;
    } catch {
      return null;
    }
  }
  if (!name || name === 'default') return null;
  const id = createHash('sha256').update(name).digest('hex');
  const metaPath = join(configDir, 'contexts', 'meta', id, 'meta.json');
  let meta: { Endpoints?: { docker?: { Host?: unknown; SkipTLSVerify?: unknown } } };
  try {
    meta = JSON.parse(readFileSync(metaPath, 'utf8')) as typeof meta;
  } catch {
    throw new LemError(`docker context "${name}" is selected but ${metaPath} cannot be read; run \`docker context ls\``);
  }
  const host = meta.Endpoints?.docker?.Host;
  if (typeof host !== 'string' || host === '') throw new LemError(`docker context "${name}" has no docker endpoint`);
  const tlsDir = join(configDir, 'contexts', 'tls', id, 'docker');
  return { host, skipTlsVerify: meta.Endpoints?.docker?.SkipTLSVerify === true, tlsDir: existsSync(tlsDir) ? tlsDir : null, name };
}

/**
 * A socket made of a child process's stdio (as `docker system dial-stdio` gives): reads come from
 * its stdout, writes go to its stdin. Half-close friendly: the engine may finish its response and
 * the process exit while http still holds the writable side, which must not fail the response.
 */
class ProcessSocket extends Duplex {
  constructor(private readonly child: ChildProcessWithoutNullStreams) {
    super({ allowHalfOpen: true });
    child.stdout.on('data', (d: Buffer) => {
      if (!this.push(d)) child.stdout.pause();
    });
    child.stdout.once('end', () => this.push(null));
    child.stdin.on('error', () => undefined); // EPIPE once the far side is gone: the read side tells the story
  }
  override _read(): void {
    this.child.stdout.resume();
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.child.stdin.destroyed || !this.child.stdin.writable) {
      cb();
      return;
    }
    this.child.stdin.write(chunk, () => cb());
  }
  override _final(cb: (err?: Error | null) => void): void {
    this.child.stdin.end();
    cb();
  }
  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (this.child.exitCode === null) this.child.kill();
    cb(err);
  }
  // http calls these on real sockets; a pipe has nothing to set.
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
  setTimeout(): this {
    return this;
  }
  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }
}

/** An http.Agent whose connections are `ssh HOST docker system dial-stdio` processes. */
function sshAgent(target: URL, env: NodeJS.ProcessEnv): Agent {
  const agent = new Agent({ keepAlive: false });
  const args: string[] = [];
  if (target.username) args.push('-l', decodeURIComponent(target.username));
  if (target.port) args.push('-p', target.port);
  args.push('-o', 'ConnectTimeout=30', '--', target.hostname, 'docker', 'system', 'dial-stdio');
  (agent as unknown as { createConnection: () => Duplex }).createConnection = () => {
    const child = spawn('ssh', args, { stdio: ['pipe', 'pipe', 'pipe'], env });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString('utf8')).slice(-2000);
    });
    const socket = new ProcessSocket(child);
    child.once('error', (err) => socket.destroy(new Error(`cannot run ssh for the docker engine at ${target.host}: ${err.message}`)));
    child.once('exit', (code) => {
      if (code !== 0 && code !== null && !socket.readableEnded) {
        socket.destroy(new Error(`ssh to ${target.host} exited ${code}: ${stderr.trim().split('\n').pop() ?? ''}`));
      }
    });
    return socket;
  };
  return agent;
}

function tlsFiles(dir: string): { ca?: Buffer; cert?: Buffer; key?: Buffer } {
  const read = (f: string): Buffer | undefined => {
    const p = join(dir, f);
    return existsSync(p) ? readFileSync(p) : undefined;
  };
  const out: { ca?: Buffer; cert?: Buffer; key?: Buffer } = {};
  const ca = read('ca.pem');
  const cert = read('cert.pem');
  const key = read('key.pem');
  if (ca) out.ca = ca;
  if (cert) out.cert = cert;
  if (key) out.key = key;
  return out;
}

function endpointFor(host: string, env: NodeJS.ProcessEnv, tls: { verify: boolean; enabled: boolean; dir: string | null }, source: string): EngineEndpoint {
  if (host.startsWith('unix://')) {
    const socketPath = host.slice('unix://'.length) || '/var/run/docker.sock';
    return { description: `unix://${socketPath}${source}`, local: true, options: { socketPath } };
  }
  if (host.startsWith('npipe://')) {
    const socketPath = host.slice('npipe://'.length) || '//./pipe/docker_engine';
    return { description: `npipe://${socketPath}${source}`, local: true, options: { socketPath } };
  }
  let url: URL;
  try {
    url = new URL(host.includes('://') ? host : `tcp://${host}`);
  } catch {
    throw new LemError(`cannot read the docker engine address "${host}"${source}; expected unix:///path, tcp://host:port or ssh://user@host`);
  }
  if (url.protocol === 'ssh:') {
    const where = `ssh://${url.username ? `${url.username}@` : ''}${url.host}`;
    // Host and port only label the requests; the agent's ssh process carries them.
    const options = { protocol: 'http', host: 'docker', port: 80, agent: sshAgent(url, env) } as Docker.DockerOptions;
    return { description: `${where}${source}`, local: false, options };
  }
  if (url.protocol !== 'tcp:' && url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new LemError(`unsupported docker engine address "${host}"${source}; expected unix://, tcp:// or ssh://`);
  }
  const useTls = tls.enabled || tls.verify || url.protocol === 'https:';
  const port = url.port ? Number(url.port) : useTls ? 2376 : 2375;
  const hostname = url.hostname.replace(/^\[|\]$/g, '');
  const isLoopback = hostname === 'localhost' || hostname === '127.0.0.1' || hostname === '::1';
  if (!useTls) {
    return { description: `tcp://${url.hostname}:${port}${source}`, local: isLoopback, options: { protocol: 'http', host: hostname, port } };
  }
  const files = tls.dir ? tlsFiles(tls.dir) : {};
  if (tls.verify && !files.ca) {
    throw new LemError(
      `DOCKER_TLS_VERIFY is set but there is no ca.pem in ${tls.dir ?? '(no certificate directory)'}; set DOCKER_CERT_PATH to the directory holding ca.pem, cert.pem and key.pem`,
    );
  }
  let options: Docker.DockerOptions = { protocol: 'https', host: hostname, port, ...files };
  if (!tls.verify) {
    // TLS without verification (DOCKER_TLS=1 / context with SkipTLSVerify), as the CLI does. The
    // modem passes no rejectUnauthorized itself, so it goes through an agent (which the modem supports).
    const { ca: _ca, ...rest } = files;
    options = { protocol: 'https', host: hostname, port, ...rest, agent: new HttpsAgent({ ...rest, rejectUnauthorized: false }) } as Docker.DockerOptions;
  }
  return { description: `tcp://${url.hostname}:${port} (TLS${tls.verify ? '' : ', unverified'})${source}`, local: isLoopback, options };
}

/** Where the docker CLI would connect, given this environment. */
export function resolveEngineEndpoint(env: NodeJS.ProcessEnv = process.env): EngineEndpoint {
  const dockerHost = env['DOCKER_HOST'];
  if (dockerHost && dockerHost.trim() !== '') {
    return endpointFor(
      dockerHost.trim(),
      env,
      {
        verify: Boolean(env['DOCKER_TLS_VERIFY']),
        enabled: Boolean(env['DOCKER_TLS']),
        dir: env['DOCKER_CERT_PATH'] || dockerConfigDir(env),
      },
      '',
    );
  }
  const ctx = contextEndpoint(env);
  if (ctx) {
    return endpointFor(ctx.host, env, { verify: !ctx.skipTlsVerify && ctx.tlsDir !== null, enabled: ctx.tlsDir !== null, dir: ctx.tlsDir }, ` (context ${ctx.name})`);
  }
  const desktop = join(homedir(), '.docker', 'run', 'docker.sock');
  const socketPath = existsSync(desktop) ? desktop : '/var/run/docker.sock';
  return { description: `unix://${socketPath}`, local: true, options: { socketPath } };
}

export interface Engine {
  docker: Docker;
  endpoint: EngineEndpoint;
}

export function connectEngine(env: NodeJS.ProcessEnv = process.env): Engine {
  const endpoint = resolveEngineEndpoint(env);
  return { docker: new Docker(endpoint.options), endpoint };
}

/** The engine's version, or a LemError saying it cannot be reached and what to do. */
export async function engineVersion(engine: Engine): Promise<Docker.DockerVersion> {
  try {
    return await engine.docker.version();
  } catch (err) {
    throw new LemError(
      `cannot reach the Docker engine at ${engine.endpoint.description}: ${describeError(err)}. ` +
        'Start it (e.g. `sudo systemctl start docker`, or `.ci/docker-setup.sh` on CI), or point DOCKER_HOST at a running engine; `lem doctor` checks the setup.',
    );
  }
}

/** A short message from a dockerode/modem error (which carry statusCode and a JSON body). */
export function describeError(err: unknown): string {
  if (err && typeof err === 'object') {
    const e = err as { statusCode?: unknown; json?: unknown; message?: unknown; code?: unknown };
    const json = e.json as { message?: unknown } | null | undefined;
    if (json && typeof json.message === 'string') return json.message;
    if (typeof e.code === 'string' && typeof e.message === 'string') return e.message;
    if (typeof e.message === 'string') return e.message.replace(/^\(HTTP code \d+\)\s*[a-z ]+-\s*/i, '').trim();
  }
  return String(err);
}

/** HTTP status of a dockerode error (404 = no such object), or null. */
export function statusCode(err: unknown): number | null {
  if (err && typeof err === 'object' && 'statusCode' in err && typeof (err as { statusCode: unknown }).statusCode === 'number') {
    return (err as { statusCode: number }).statusCode;
  }
  return null;
}
