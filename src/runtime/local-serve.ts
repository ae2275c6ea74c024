/**
 * The local runtime's persistent workers: one `python3 -m lem_worker serve` process per backend,
 * started on the first run that needs it and kept while runs succeed. A run is a request on its
 * stdin; its answer comes back on its stdout; the run's output goes straight into the run's log
 * (the worker opens it). A worker that dies, is stopped, or recycles itself (after a failure) is
 * replaced by a fresh one at the next run; force_cold_start replaces it before every run.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, fchmodSync, mkdirSync, openSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { BackendName } from '../contract/backends.js';
import { exchangeRun, lineSplitter, MessageQueue, parseServeLine, type ServeMessage } from './serve-protocol.js';
import type { DispatchOutcome, RunSpec } from './types.js';

export interface ServeProcessOptions {
  python: string;
  env: NodeJS.ProcessEnv;
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** One running `lem_worker serve` process. */
export class ServeProcess {
  readonly child: ChildProcess;
  readonly messages = new MessageQueue<ServeMessage>();
  readonly exited: Promise<Exit>;
  private stderrTail = '';
  private gone = false;
  /** Runs it has been sent (force_cold_start replaces a used one). */
  runs = 0;

  constructor(readonly backend: BackendName, readonly stateDir: string, opts: ServeProcessOptions) {
    mkdirSync(stateDir, { recursive: true });
    this.child = spawn(opts.python, ['-m', 'lem_worker', 'serve', '--state-dir', stateDir], {
      env: opts.env,
      stdio: ['pipe', 'pipe', 'pipe'],
      // Own process group: a terminal Ctrl-C reaches lem, which then stops the worker itself.
      detached: true,
    });
    this.child.stdout?.on('data', lineSplitter((line) => {
      const m = parseServeLine(line);
      if (m) this.messages.push(m);
    }));
    // Only what the worker prints before it redirects its output (an import error, say).
    this.child.stderr?.on('data', (d: Buffer) => {
      this.stderrTail = (this.stderrTail + d.toString()).slice(-2000);
    });
    this.child.stdin?.on('error', () => undefined); // EPIPE when it died: the exit says why
    this.exited = new Promise((resolve) => {
      this.child.once('error', (err) => {
        this.stderrTail += err.message;
        this.gone = true;
        this.messages.close();
        resolve({ code: null, signal: null });
      });
      this.child.once('exit', (code, signal) => {
        this.gone = true;
        this.messages.close();
        resolve({ code, signal });
      });
    });
    // Referenced (lem waits on it) until its first run has been answered: runOnServe then idles it.
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get alive(): boolean {
    return !this.gone;
  }

  /** Waits for the ready line; the reason it never came otherwise. */
  async ready(): Promise<string | null> {
    const m = await this.messages.next();
    if (m?.op === 'ready') return null;
    const e = await this.exited;
    const how = e.signal ? `killed by ${e.signal}` : `exit ${e.code}`;
    return `the persistent worker could not start (${how})${this.stderrTail.trim() ? `: ${this.stderrTail.trim().split('\n').slice(-3).join(' ')}` : ''}`;
  }

  /** While a run is in flight lem waits on the worker; while idle it must not keep lem alive. */
  private refs(on: boolean): void {
    for (const s of [this.child.stdout, this.child.stderr, this.child.stdin] as Array<(Readable & { ref?: () => void; unref?: () => void }) | null>) {
      if (on) s?.ref?.();
      else s?.unref?.();
    }
    if (on) this.child.ref();
    else this.child.unref();
  }

  busy(): void {
    this.refs(true);
  }

  idle(): void {
    this.refs(false);
  }

  send(line: string): void {
    this.child.stdin?.write(line);
  }

  /** Signals its process group (it is a group leader), else the process. */
  signal(sig: NodeJS.Signals): void {
    if (this.gone || this.child.pid === undefined) return;
    try {
      process.kill(-this.child.pid, sig);
    } catch {
      this.child.kill(sig);
    }
  }

  /** Asks it to exit (EOF), then SIGKILL after the grace; resolves once it is gone. */
  async close(graceMs: number): Promise<void> {
    if (this.gone) return;
    this.busy();
    this.child.stdin?.end();
    const timer = setTimeout(() => this.signal('SIGKILL'), graceMs);
    const e = await this.exited;
    clearTimeout(timer);
    // A clean exit leaves nothing worth keeping; a crashed worker's serve.log stays for the post-mortem.
    if (e.code === 0) rmSync(this.stateDir, { recursive: true, force: true });
  }
}

/**
 * Runs one request on `serve`: its answer, or why there is none (the worker died or was stopped);
 * null when the worker had died before it took the run (nothing ran: the caller retries on a fresh one).
 */
export async function runOnServe(serve: ServeProcess, spec: RunSpec, coldStart: boolean, signal: AbortSignal, killGraceMs: number): Promise<DispatchOutcome | null> {
  // The worker appends to the log; create it here with the mode every run file has.
  const fd = openSync(spec.logPath, 'a', 0o644);
  fchmodSync(fd, 0o644);
  closeSync(fd);
  serve.busy();
  serve.runs++;
  const { started, done: answer, stop, settle } = await exchangeRun(serve, spec, coldStart, signal, killGraceMs, (sig) => serve.signal(sig));
  // A stopped or recycling worker exits now: wait, so nothing of it overlaps the next run.
  if (answer === null || answer.recycle || stop !== null) await serve.exited;
  await settle();
  serve.idle();
  const exitCode = answer?.exit_code ?? null;
  if (stop) return { exitCode, timedOut: stop.timedOut, failureReason: stop.reason };
  if (!started) return null;
  if (answer) return { exitCode, timedOut: false, failureReason: null };
  const e = await serve.exited;
  const how = e.signal ? `was killed by ${e.signal}${e.signal === 'SIGKILL' ? ' (the out-of-memory killer, or kill -9)' : ''}` : `exited with code ${e.code}`;
  return { exitCode: null, timedOut: false, failureReason: `the persistent worker (pid ${serve.pid}) ${how} during the run; a fresh one serves the next run`, ...(e.signal ? { failureKind: 'killed' as const } : {}) };
}

/** The state directory of a backend's n-th worker of this lem process. */
export function serveStateDir(root: string, backend: BackendName, n: number): string {
  return join(root, `${backend}-${process.pid}-${n}`);
}
