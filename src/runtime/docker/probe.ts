/**
 * Preflight on the docker runtime: is the backend's image on the engine, and what does the worker
 * in it report (`python3 -m lem_worker probe --json --configs -`, the experiment configs on stdin)?
 * The worker runs in a throwaway container of the image (the service's GPU requests and runtime, so
 * it sees the GPUs a run would see; no mounts, no network), removed whatever happens: `docker run
 * --rm` through the Engine API. No service container is started.
 */
import { PassThrough } from 'node:stream';
import type Docker from 'dockerode';
import type { ProbeOutcome } from '../types.js';
import type { ComposeService } from './compose.js';
import { describeError, statusCode } from './engine.js';
import { deviceRequests, LABELS, WORKER_MOUNT, type GpuChoice } from './service-spec.js';
import { ownerLabels, sweepDeadThrowaways } from './throwaway.js';

export interface ProbeInput {
  def: ComposeService;
  /** Backends served by this image (for messages and the fix). */
  backends: readonly string[];
  /** The base compose project name (the probe container's lem.project label). */
  project: string;
  gpus: GpuChoice;
  /** Host path of images/worker to mount over the image's copy (worker development), or null. */
  workerMount: string | null;
  engineDescription: string;
  timeoutMs?: number;
}

/**
 * The label of every probe container, valued with the base compose project, so a leftover one can be
 * found (`docker ps -a --filter label=lem.probe`). Not lem.project: that label marks service containers.
 */
export const PROBE_LABEL = 'lem.probe';

export async function probeImage(docker: Docker, input: ProbeInput, configs: readonly unknown[]): Promise<ProbeOutcome> {
  const { def } = input;
  const where = `image ${def.image} (service ${def.name})`;
  const which = input.backends.join(' ');
  try {
    await docker.getImage(def.image).inspect();
  } catch (err) {
    if (statusCode(err) === 404) {
      return {
        ok: false,
        where,
        problem: `image ${def.image} (service ${def.name}, backend ${which}) is not on the Docker engine at ${input.engineDescription}`,
        fix: `lem images build ${which}${def.build ? ` (or docker build -f ${def.build.dockerfile} -t ${def.image} ${def.build.context})` : ''}`,
      };
    }
    return { ok: false, where, problem: `cannot inspect image ${def.image}: ${describeError(err)}`, fix: null };
  }
  let container: Docker.Container | null = null;
  try {
    await sweepDeadThrowaways(docker); // a killed lem's probe that never started (AutoRemove needs a start)
    container = await docker.createContainer({
      Image: def.image,
      Entrypoint: ['python3', '-m', 'lem_worker', 'probe', '--json', '--configs', '-'],
      Cmd: [],
      Env: ['PYTHONUNBUFFERED=1', ...(input.workerMount ? [`PYTHONPATH=${WORKER_MOUNT}`] : [])],
      OpenStdin: true,
      StdinOnce: true,
      AttachStdin: true,
      AttachStdout: true,
      AttachStderr: true,
      Tty: false,
      Labels: { [PROBE_LABEL]: input.project, [LABELS.managed]: 'lem', [LABELS.service]: def.name, ...ownerLabels() },
      HostConfig: {
        // The engine removes it when it exits, also when lem is killed meanwhile (its stdin then closes
        // and the probe ends); the exit code comes from a wait for its removal sent before the start (as `docker run --rm`).
        AutoRemove: true,
        NetworkMode: 'none',
        DeviceRequests: deviceRequests(def, input.gpus),
        ...(def.runtime !== null ? { Runtime: def.runtime } : {}),
        ...(input.workerMount ? { Binds: [`${input.workerMount}:${WORKER_MOUNT}:ro`] } : {}),
      },
    });
    const c = container;
    const stream = (await c.attach({ stream: true, stdin: true, stdout: true, stderr: true, hijack: true })) as NodeJS.ReadWriteStream;
    const out = new PassThrough();
    const errOut = new PassThrough();
    const chunks: Buffer[] = [];
    const errChunks: Buffer[] = [];
    out.on('data', (b: Buffer) => chunks.push(b));
    errOut.on('data', (b: Buffer) => errChunks.push(b));
    docker.modem.demuxStream(stream, out, errOut);
    const exited = c.wait({ condition: 'removed' }) as Promise<{ StatusCode: number }>;
    exited.catch(() => undefined); // a failed start rejects it too: handled here, thrown by the start
    await c.start();
    stream.end(JSON.stringify(configs));
    const timer = setTimeout(() => void c.kill().catch(() => undefined), input.timeoutMs ?? 120_000);
    let code: number;
    try {
      code = (await exited).StatusCode;
    } finally {
      clearTimeout(timer);
    }
    // The attach stream may deliver its last bytes after the wait returns.
    await new Promise<void>((resolve) => {
      if ((stream as unknown as { readableEnded?: boolean }).readableEnded) resolve();
      stream.once('end', () => resolve());
      stream.once('close', () => resolve());
      setTimeout(resolve, 2_000);
    });
    const stdout = Buffer.concat(chunks).toString('utf8');
    const stderr = Buffer.concat(errChunks).toString('utf8');
    if (code === 2 && /invalid choice: '?probe/.test(stderr)) {
      // A worker older than `probe`: the image exists and has a worker, the rest cannot be asked.
      return { ok: true, where, report: null, note: `the worker in ${where} predates \`probe\` (packages and GPUs not checked); rebuild it: lem images build ${which}` };
    }
    if (code !== 0) {
      const noWorker = /No module named '?lem_worker/.test(stderr);
      const last = stderr.trim().split('\n').slice(-1)[0] ?? '';
      return {
        ok: false,
        where,
        problem: noWorker ? `${where} has no lem worker (python3 -m lem_worker fails: ${last.slice(0, 200)})` : `the worker's probe in ${where} exited ${code}: ${last.slice(0, 300)}`,
        fix: noWorker ? `rebuild it: lem images build ${which}` : null,
      };
    }
    try {
      return { ok: true, where, report: JSON.parse(stdout) as unknown };
    } catch {
      return { ok: false, where, problem: `the worker's probe in ${where} printed no JSON: ${stdout.slice(0, 200)}`, fix: `rebuild it: lem images build ${which}` };
    }
  } catch (err) {
    return { ok: false, where, problem: `cannot run the worker's probe in ${where}: ${describeError(err)}`, fix: null };
  } finally {
    // Gone already when it ran (AutoRemove); this removes one that was created but never started.
    if (container) await container.remove({ force: true }).catch(() => undefined);
  }
}
