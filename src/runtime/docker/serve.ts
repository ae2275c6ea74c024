/**
 * The docker runtime's persistent workers: one `python3 -m lem_worker serve` per service container,
 * an exec with stdin attached (the request channel) whose stdout carries the answers. A run is a
 * request line; the worker writes the run's output into the run's log itself (the workspace is
 * mounted at the same path). The worker is replaced when it dies, recycles itself after a failure,
 * or its container restarts (force_cold_start restarts the container before a used one runs again).
 */
import { Writable, type Duplex } from 'node:stream';
import type Docker from 'dockerode';
import { exchangeRun, lineSplitter, MessageQueue, parseServeLine, type ServeMessage, type ServeReady } from '../serve-protocol.js';
import type { DispatchOutcome, RunSpec } from '../types.js';
import { killInContainer, processAlive, waitExecExit } from './exec.js';

let seq = 0;

export class DockerServe {
  readonly messages = new MessageQueue<ServeMessage>();
  readonly ended: Promise<void>;
  ready: ServeReady | null = null;
  runs = 0;
  private gone = false;
  private stderrTail = '';

  constructor(
    readonly docker: Docker,
    readonly containerId: string,
    readonly startedAt: string,
    readonly exec: Docker.Exec,
    private readonly stream: Duplex,
  ) {
    const split = lineSplitter((line) => {
      const m = parseServeLine(line);
      if (m) this.messages.push(m);
    });
    const out = new Writable({
      write(chunk: Buffer, _enc, cb) {
        split(chunk);
        cb();
      },
    });
    const err = new Writable({
      write: (chunk: Buffer, _enc, cb) => {
        this.stderrTail = (this.stderrTail + chunk.toString()).slice(-2000);
        cb();
      },
    });
    docker.modem.demuxStream(stream, out, err);
    this.ended = new Promise((resolve) => {
      const done = (): void => {
        this.gone = true;
        this.messages.close();
        resolve();
      };
      stream.once('end', done);
      stream.once('close', done);
      stream.once('error', done);
    });
  }

  /** Starts the worker in a container; the worker, or why it did not start. */
  static async start(docker: Docker, containerId: string, startedAt: string, backend: string, env: string[], user: string | undefined): Promise<DockerServe | string> {
    const stateDir = `/tmp/lem-serve-${backend}-${process.pid}-${++seq}`;
    let serve: DockerServe;
    try {
      const exec = await docker.getContainer(containerId).exec({
        Cmd: ['python3', '-m', 'lem_worker', 'serve', '--state-dir', stateDir],
        AttachStdin: true,
        AttachStdout: true,
        AttachStderr: true,
        Tty: false,
        Env: env,
        ...(user ? { User: user } : {}),
      });
      const stream = await exec.start({ hijack: true, stdin: true });
      serve = new DockerServe(docker, containerId, startedAt, exec, stream);
    } catch (err) {
      return `cannot start the persistent worker: ${err instanceof Error ? err.message : String(err)}`;
    }
    const m = await serve.messages.next();
    if (m?.op === 'ready' && m.start_ticks !== null) {
      serve.ready = m;
      return serve;
    }
    serve.stream.destroy();
    const code = await waitExecExit(serve.exec, 2_000).catch(() => null);
    return `the persistent worker could not start (exit ${code})${serve.stderrTail.trim() ? `: ${serve.stderrTail.trim().split('\n').slice(-2).join(' ')}` : ''}`;
  }

  get alive(): boolean {
    return !this.gone;
  }

  get pid(): number {
    return this.ready?.pid ?? -1;
  }

  send(line: string): void {
    this.stream.write(line);
  }

  kill(sig: 15 | 9): Promise<unknown> {
    if (!this.ready?.start_ticks) return Promise.resolve();
    return killInContainer(this.docker, this.containerId, this.ready.pid, this.ready.start_ticks, sig).catch(() => undefined);
  }

  /** EOF on its stdin (it exits when idle), SIGKILL after the grace; resolves once it is gone. */
  async close(graceMs: number): Promise<void> {
    if (this.gone) return;
    this.stream.end();
    const timer = setTimeout(() => void this.kill(9).then(() => this.stream.destroy()), graceMs);
    await this.ended;
    clearTimeout(timer);
  }
}

/**
 * One run on a container's persistent worker; `died` says whether its container went away. null when
 * the worker had died before it took the run (nothing ran: the caller retries on a fresh one).
 */
export async function runOnDockerServe(
  serve: DockerServe,
  spec: RunSpec,
  coldStart: boolean,
  signal: AbortSignal,
  killGraceMs: number,
  died: (bySignal: boolean) => Promise<string | null>,
): Promise<DispatchOutcome | null> {
  serve.runs++;
  const { started, done, stop, settle } = await exchangeRun(serve, spec, coldStart, signal, killGraceMs, (sig) => serve.kill(sig === 'SIGTERM' ? 15 : 9));
  if (done === null || done.recycle || stop !== null) {
    // It exits now (or has died): wait, so nothing of it overlaps the next run.
    const gone = await Promise.race([serve.ended.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), killGraceMs + 5_000))]);
    if (!gone || (serve.ready?.start_ticks && (await processAlive(serve.docker, serve.containerId, serve.pid, serve.ready.start_ticks).catch(() => false)))) {
      await serve.kill(9);
    }
  }
  await settle();
  if (stop) return { exitCode: done?.exit_code ?? null, timedOut: stop.timedOut, failureReason: stop.reason };
  if (done) return { exitCode: done.exit_code, timedOut: false, failureReason: null };
  if (!started) return null;
  const code = await waitExecExit(serve.exec, 2_000).catch(() => null);
  const container = await died(code === null || code >= 128);
  if (container) return { exitCode: null, timedOut: false, failureReason: container, failureKind: 'container_gone' };
  const how = code === 137 ? 'was killed by SIGKILL (exit 137; usually the out-of-memory killer)' : `exited with code ${code}`;
  return { exitCode: null, timedOut: false, failureReason: `the persistent worker (pid ${serve.pid}) ${how} during the run; a fresh one serves the next run`, ...(code === 137 ? { failureKind: 'killed' as const } : {}) };
}
