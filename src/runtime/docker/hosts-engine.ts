/**
 * Connecting to one host of a pool: unix://, tcp:// (with TLS client certificates), ssh:// (the
 * remote engine's socket forwarded to a local socket by OpenSSH, `ssh -NL local.sock:remote.sock`,
 * rather than an in-process SSH client), or a docker context. And its GPU list: given, fake
 * (LEM_FAKE_GPUS set), or `auto` (nvidia-smi in a throwaway container with every GPU).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import type { HostConfig } from '../../config/hosts.js';
import { LemError } from '../../util/errors.js';
import { connectEngine, describeError, type Engine } from './engine.js';
import { parseGpuList, type GpuInfo } from './hosts.js';
import { ownerLabels, sweepDeadThrowaways } from './throwaway.js';

export interface HostEngine {
  engine: Engine;
  /** Not this machine's engine: no binds of this machine's paths, run files over the archive API. */
  remote: boolean;
  close(): void;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function readPem(path: string, what: string, host: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new LemError(`host ${host}: cannot read tls.${what} ${path}: ${(err as Error).message}`);
  }
}

/** Forwards the remote engine's socket with OpenSSH; resolves once the local socket exists. */
async function sshForward(h: HostConfig, url: URL, env: NodeJS.ProcessEnv): Promise<HostEngine> {
  const dir = mkdtempSync(join(tmpdir(), `lem-ssh-${h.name}-`));
  const local = join(dir, 'docker.sock');
  const remote = url.pathname && url.pathname !== '/' ? url.pathname : '/var/run/docker.sock';
  const args = ['-N', '-o', 'ExitOnForwardFailure=yes', '-o', 'BatchMode=yes', '-o', 'ServerAliveInterval=5', '-o', 'ServerAliveCountMax=2'];
  for (const o of h.ssh_options) args.push('-o', o);
  if (url.port) args.push('-p', url.port);
  args.push('-L', `${local}:${remote}`, url.username ? `${decodeURIComponent(url.username)}@${url.hostname}` : url.hostname);
  // ssh under a small shell that ends it when lem's end of its stdin closes: lem killed by SIGKILL
  // leaves no forward behind.
  // (its own process group: whichever of ssh and that stdin ends first ends the group).
  const child: ChildProcess = spawn('sh', ['-c', '(ssh "$@" </dev/null; kill 0) & cat >/dev/null; kill 0', 'lem-ssh-forward', ...args], {
    stdio: ['pipe', 'ignore', 'pipe'],
    env,
    detached: true,
  });
  child.stdin?.on('error', () => undefined);
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
  let exited: string | null = null;
  child.once('exit', (code, sig) => (exited = `ssh exited ${code ?? sig}`));
  child.once('error', (err) => (exited = `cannot run ssh: ${err.message}`));
  const close = (): void => {
    child.stdin?.end();
    rmSync(dir, { recursive: true, force: true });
  };
  for (let i = 0; i < 300 && !existsSync(local); i++) {
    if (exited !== null) break;
    await sleep(50);
  }
  if (!existsSync(local)) {
    close();
    throw new LemError(`host ${h.name}: cannot forward the engine socket over ssh (${url.host}): ${exited ?? 'timed out'}${stderr.trim() ? `: ${stderr.trim().split('\n').pop() ?? ''}` : ''}`);
  }
  const docker = new Docker({ socketPath: local });
  return { engine: { docker, endpoint: { description: `ssh://${url.host}${remote} (forwarded to ${local})`, local: false, options: { socketPath: local } } }, remote: true, close };
}

export async function connectHost(h: HostConfig, env: NodeJS.ProcessEnv = process.env): Promise<HostEngine> {
  if (h.context !== undefined) {
    const { DOCKER_HOST: _host, ...rest } = env;
    const engine = connectEngine({ ...rest, DOCKER_CONTEXT: h.context });
    return { engine, remote: !engine.endpoint.local, close: () => undefined };
  }
  const address = h.engine as string;
  if (address.startsWith('unix://')) {
    const socketPath = address.slice('unix://'.length);
    return { engine: { docker: new Docker({ socketPath }), endpoint: { description: address, local: true, options: { socketPath } } }, remote: false, close: () => undefined };
  }
  const url = new URL(address);
  if (url.protocol === 'ssh:') return sshForward(h, url, env);
  const tls = h.tls;
  const options: Docker.DockerOptions = {
    host: url.hostname,
    port: Number(url.port || (tls ? 2376 : 2375)),
    protocol: tls ? 'https' : 'http',
    ...(tls ? { ca: readPem(tls.ca, 'ca', h.name), cert: readPem(tls.cert, 'cert', h.name), key: readPem(tls.key, 'key', h.name) } : {}),
  };
  return { engine: { docker: new Docker(options), endpoint: { description: `${address}${tls ? ' (TLS)' : ''}`, local: false, options } }, remote: true, close: () => undefined };
}

/** Lists a host's GPUs (UUID, model) with nvidia-smi in a throwaway container given every GPU. */
export async function autoGpus(h: HostConfig, engine: Engine, image: string): Promise<GpuInfo[]> {
  const d = engine.docker;
  let container: Docker.Container | null = null;
  try {
    await sweepDeadThrowaways(d);
    container = await d.createContainer({
      Image: image,
      Entrypoint: ['nvidia-smi', '--query-gpu=uuid,name', '--format=csv,noheader'],
      Labels: { 'lem.managed-by': 'lem', 'lem.role': 'gpu-probe', ...ownerLabels() },
      HostConfig: { DeviceRequests: [{ Driver: 'nvidia', Count: -1, Capabilities: [['gpu', 'utility']] }], NetworkMode: 'none' },
    });
    await container.start();
    const r = (await container.wait()) as { StatusCode?: number };
    const logs = (await container.logs({ stdout: true, stderr: true })).toString('utf8').replace(/[\x00-\x08]/g, '');
    if (r.StatusCode !== 0) throw new Error(logs.trim().slice(-300) || `exit ${r.StatusCode}`);
    const list = logs
      .split('\n')
      .map((l) => l.replace(/^[^G]*(GPU-)/, '$1').trim())
      .filter((l) => l.startsWith('GPU-'))
      .map((l) => l.split(',').map((x) => x.trim()).join('='));
    return parseGpuList(list.join(','), `host ${h.name} (nvidia-smi)`);
  } catch (err) {
    throw new LemError(`host ${h.name}: cannot list its GPUs (gpus: auto) with nvidia-smi in ${image}: ${describeError(err)}; give gpus: [UUID, …] or [index, …]`);
  } finally {
    await container?.remove({ force: true }).catch(() => undefined);
  }
}

/** A host's GPU list from its config (`UUID`, `UUID=MODEL` or an index), or auto. */
export function configuredGpus(h: HostConfig): GpuInfo[] | 'auto' {
  if (h.gpus === 'auto') return 'auto';
  return parseGpuList(h.gpus.map(String).join(','), `hosts.${h.name}.gpus`);
}
