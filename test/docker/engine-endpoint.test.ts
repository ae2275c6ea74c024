/**
 * Finding the engine like the docker CLI: DOCKER_HOST (unix, tcp, tcp+TLS, ssh), docker contexts,
 * the default socket. Remote transports are exercised against the local engine through a TCP
 * proxy and through a stand-in `ssh` that runs `docker system dial-stdio` locally.
 */
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectEngine, resolveEngineEndpoint } from '../../src/runtime/docker/engine.js';
import { execCapture } from '../../src/runtime/docker/exec.js';
import { createDockerRuntime } from '../../src/runtime/docker/runtime.js';
import { LemError } from '../../src/util/errors.js';
import { docker, engine, requireEngine, runDockerTests, tempWorkspace, TEST_IMAGE } from './engine.js';

describe('resolveEngineEndpoint', () => {
  const home = tempWorkspace('lem-docker-home-');
  const base = { HOME: home, DOCKER_CONFIG: join(home, '.docker') };

  it('defaults to the local socket', () => {
    const e = resolveEngineEndpoint(base);
    expect(e.local).toBe(true);
    expect(e.options.socketPath).toMatch(/docker\.sock$/);
  });

  it('reads unix and plain tcp DOCKER_HOST', () => {
    expect(resolveEngineEndpoint({ ...base, DOCKER_HOST: 'unix:///run/x.sock' })).toMatchObject({ description: 'unix:///run/x.sock', local: true, options: { socketPath: '/run/x.sock' } });
    expect(resolveEngineEndpoint({ ...base, DOCKER_HOST: 'tcp://gpu1:2375' })).toMatchObject({ local: false, options: { protocol: 'http', host: 'gpu1', port: 2375 } });
    expect(resolveEngineEndpoint({ ...base, DOCKER_HOST: 'tcp://127.0.0.1' }).options.port).toBe(2375);
    expect(resolveEngineEndpoint({ ...base, DOCKER_HOST: 'localhost:1234' })).toMatchObject({ local: true, options: { host: 'localhost', port: 1234 } });
  });

  it('uses TLS with the certificates from DOCKER_CERT_PATH when DOCKER_TLS_VERIFY is set', () => {
    const certs = join(home, 'certs');
    mkdirSync(certs, { recursive: true });
    for (const f of ['ca.pem', 'cert.pem', 'key.pem']) writeFileSync(join(certs, f), `-----BEGIN ${f}-----\n`);
    const e = resolveEngineEndpoint({ ...base, DOCKER_HOST: 'tcp://gpu1', DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: certs });
    expect(e.description).toBe('tcp://gpu1:2376 (TLS)');
    expect(e.options.protocol).toBe('https');
    expect(e.options.port).toBe(2376);
    expect(String(e.options.ca)).toContain('ca.pem');
    expect(String(e.options.cert)).toContain('cert.pem');
    expect(() => resolveEngineEndpoint({ ...base, DOCKER_HOST: 'tcp://gpu1', DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: join(home, 'none') })).toThrow(LemError);
    const unverified = resolveEngineEndpoint({ ...base, DOCKER_HOST: 'tcp://gpu1:2376', DOCKER_TLS: '1', DOCKER_CERT_PATH: certs });
    expect(unverified.description).toBe('tcp://gpu1:2376 (TLS, unverified)');
    expect(unverified.options.ca).toBeUndefined();
  });

  it('reads ssh DOCKER_HOST and the current docker context', () => {
    expect(resolveEngineEndpoint({ ...base, DOCKER_HOST: 'ssh://me@gpu1:2222' })).toMatchObject({ description: 'ssh://me@gpu1:2222', local: false });
    const name = 'remote-box';
    const id = createHash('sha256').update(name).digest('hex');
    mkdirSync(join(home, '.docker', 'contexts', 'meta', id), { recursive: true });
    writeFileSync(join(home, '.docker', 'contexts', 'meta', id, 'meta.json'), JSON.stringify({ Name: name, Endpoints: { docker: { Host: 'tcp://box:2375', SkipTLSVerify: false } } }));
    writeFileSync(join(home, '.docker', 'config.json'), JSON.stringify({ currentContext: name }));
    expect(resolveEngineEndpoint(base)).toMatchObject({ description: 'tcp://box:2375 (context remote-box)', options: { host: 'box', port: 2375 } });
    expect(resolveEngineEndpoint({ ...base, DOCKER_CONTEXT: 'default' }).local).toBe(true);
    expect(() => resolveEngineEndpoint({ ...base, DOCKER_CONTEXT: 'nope' })).toThrow(/docker context "nope"/);
  });

  it('refuses addresses it cannot use', () => {
    expect(() => resolveEngineEndpoint({ ...base, DOCKER_HOST: 'fd://' })).toThrow(/unsupported docker engine address/);
  });
});

describe.skipIf(!runDockerTests)('remote transports against the local engine', () => {
  let proxy: Server;
  let port = 0;
  let binDir: string;

  beforeAll(async () => {
    await requireEngine();
    const socketPath = engine.endpoint.options.socketPath;
    if (typeof socketPath !== 'string') throw new Error('these tests need the local engine on a unix socket');
    // tcp://127.0.0.1:PORT → the unix socket, as a daemon listening on tcp would be.
    proxy = createServer((client) => {
      const upstream = createConnection(socketPath);
      client.pipe(upstream).pipe(client);
      const close = (): void => {
        client.destroy();
        upstream.destroy();
      };
      client.on('error', close);
      upstream.on('error', close);
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', () => r()));
    port = (proxy.address() as { port: number }).port;
    // A stand-in `ssh` that runs the remote side (`docker system dial-stdio`) locally.
    binDir = tempWorkspace('lem-fake-ssh-');
    writeFileSync(join(binDir, 'ssh'), '#!/bin/sh\nwhile [ "$1" != "--" ]; do shift; done\nshift; shift\nunset DOCKER_HOST\nexec "$@"\n');
    chmodSync(join(binDir, 'ssh'), 0o755);
    const hasCli = await execa('docker', ['system', 'dial-stdio', '--help'], { reject: false }).then((r) => r.exitCode === 0, () => false);
    if (!hasCli) binDir = '';
  });

  afterAll(() => {
    proxy?.close();
  });

  async function exercise(env: NodeJS.ProcessEnv): Promise<void> {
    const remote = connectEngine(env);
    expect((await remote.docker.version()).ApiVersion).toMatch(/^\d+\.\d+$/);
    const c = await remote.docker.createContainer({ Image: TEST_IMAGE, Entrypoint: ['sleep', '30'], HostConfig: { Init: true } });
    try {
      await c.start();
      const r = await execCapture(remote.docker, c.id, ['sh', '-c', 'echo out; echo err >&2; exit 4']);
      expect(r).toEqual({ exitCode: 4, stdout: 'out\n', stderr: 'err\n' });
    } finally {
      await docker.getContainer(c.id).remove({ force: true });
    }
  }

  it('tcp:// (plain HTTP over TCP)', async () => {
    await exercise({ ...process.env, DOCKER_HOST: `tcp://127.0.0.1:${port}` });
  });

  it('ssh:// (the system ssh client running docker system dial-stdio)', async (t) => {
    if (!binDir) t.skip();
    await exercise({ ...process.env, DOCKER_HOST: 'ssh://someone@enginehost', PATH: `${binDir}:${process.env['PATH'] ?? ''}` });
  });

  it('the docker runtime works over a remote transport: services, exec dispatch, timeout kill', async (t) => {
    if (!binDir) t.skip();
    const remote = connectEngine({ ...process.env, DOCKER_HOST: 'ssh://someone@enginehost', PATH: `${binDir}:${process.env['PATH'] ?? ''}` });
    expect(remote.endpoint.local).toBe(false);
    // The "remote" engine shares this filesystem here, so the workspace mount still lines up.
    const root = tempWorkspace('lem-docker-remote-');
    writeFileSync(join(root, 'docker-compose.yml'), `name: lemremote\nservices:\n  cpu:\n    image: ${TEST_IMAGE}\n`);
    const rt = createDockerRuntime({ engine: remote, composeFiles: [join(root, 'docker-compose.yml')], workerCommand: (s) => ['sh', '-c', s.runId], killGraceMs: 500 });
    const campaignId = `remote-${process.pid}`;
    try {
      await rt.prepare(['calibration'], { campaignId, workspaceRoot: root, forceColdStart: false });
      const spec = (script: string, timeoutS: number | null) => {
        const outDir = join(root, 'runs', campaignId, String(Math.random()).slice(2)); // only the campaign's run directory is mounted
        mkdirSync(outDir, { recursive: true });
        return { runId: script, experimentId: 'e', cycle: 1, attempt: 1, backend: 'calibration' as const, configPath: join(outDir, 'c.json'), outDir, logPath: join(outDir, 'worker.log'), timeoutS, attemptToken: 'lem-remote-p0-a1' };
      };
      const ok = spec('echo over-ssh; exit 5', null);
      expect(await rt.dispatch(ok, new AbortController().signal, () => undefined)).toEqual({ exitCode: 5, timedOut: false, failureReason: null });
      expect(readFileSync(ok.logPath, 'utf8')).toBe('over-ssh\n');
      const slow = await rt.dispatch(spec('trap "" TERM; sleep 300', 1), new AbortController().signal, () => undefined);
      expect(slow.timedOut).toBe(true);
    } finally {
      await rt.shutdown({ keepServices: false, campaignId });
    }
    expect(await docker.listContainers({ all: true, filters: { label: [`lem.campaign=${campaignId}`] } })).toEqual([]);
  });
});
