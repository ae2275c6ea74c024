/**
 * The orchestrator's side of the persistent worker's protocol (`python3 -m lem_worker serve`, see
 * images/worker/lem_worker/serve.py): one JSON request per line on its stdin, one JSON answer per
 * line on its stdout. Shared by the local and docker runtimes.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RunSpec } from './types.js';

/** How a runtime runs a worker: one long-lived `serve` process per backend, or a process per run. */
export type WorkerMode = 'persistent' | 'per_run';

/** The mode asked for: an explicit option, else $LEM_WORKER (`per_run` or `persistent`), else persistent. */
export function workerMode(explicit?: WorkerMode): WorkerMode {
  if (explicit) return explicit;
  return process.env['LEM_WORKER'] === 'per_run' ? 'per_run' : 'persistent';
}

export interface ServeReady {
  op: 'ready';
  pid: number;
  start_s: number | null;
  /** Its start time in clock ticks (/proc/PID/stat field 22): with the pid, what a kill checks. */
  start_ticks: string | null;
}

export interface ServeDone {
  op: 'done';
  exit_code: number;
  kind: string;
  message: string;
  /** The worker exits after this answer (failure, terminated, or an engine it cannot keep). */
  recycle: boolean;
}

/** The request reached a live worker (one that died while idle never sends it: lem retries elsewhere). */
export interface ServeStarted {
  op: 'started';
}

export type ServeMessage = ServeReady | ServeStarted | ServeDone;

/** One control line, or null when it is not a message of the protocol. */
export function parseServeLine(line: string): ServeMessage | null {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null) return null;
  const o = v as Record<string, unknown>;
  if (o['op'] === 'ready' && typeof o['pid'] === 'number') {
    return { op: 'ready', pid: o['pid'], start_s: typeof o['start_s'] === 'number' ? o['start_s'] : null, start_ticks: typeof o['start_ticks'] === 'string' ? o['start_ticks'] : null };
  }
  if (o['op'] === 'started') return { op: 'started' };
  if (o['op'] === 'done' && typeof o['exit_code'] === 'number') {
    return {
      op: 'done',
      exit_code: o['exit_code'],
      kind: typeof o['kind'] === 'string' ? o['kind'] : 'engine_error',
      message: typeof o['message'] === 'string' ? o['message'] : '',
      recycle: o['recycle'] === true,
    };
  }
  return null;
}

/** The request line of one run. `coldStart`: this run got a fresh worker (force_cold_start). */
export function runRequest(spec: RunSpec, coldStart: boolean): string {
  return `${JSON.stringify({ op: 'run', config: spec.configPath, out: spec.outDir, log: spec.logPath, attempt_token: spec.attemptToken, cold_start: coldStart })}\n`;
}

/**
 * The answer to a run request: `started`, then `done`. null: the worker died before it took the run
 * (it had died while idle), so nothing ran and the run can go to a fresh worker.
 */
export async function awaitAnswer(messages: MessageQueue<ServeMessage>): Promise<{ started: boolean; done: ServeDone | null }> {
  const first = await messages.next();
  if (first === null) return { started: false, done: null };
  const m = first.op === 'started' ? await messages.next() : first;
  return { started: true, done: m?.op === 'done' ? m : null };
}

/** Why lem stopped a run on a persistent worker (a per-run timeout, or the campaign interrupted). */
export interface ServeStop {
  reason: string;
  timedOut: boolean;
}

/** One run request and its answer; `settle()` once the worker has exited (or answered) ends the stop's kill timer. */
export interface RunExchange {
  started: boolean;
  done: ServeDone | null;
  stop: ServeStop | null;
  settle(): Promise<void>;
}

/**
 * Sends one run request to a persistent worker and waits for its answer. A per-run timeout or an abort
 * stops the worker: `kill('SIGTERM')`, then `kill('SIGKILL')` after `killGraceMs` unless settled first.
 * Both runtimes (local subprocess, docker exec) share this; they differ only in how a signal is sent.
 */
export async function exchangeRun(
  serve: { send(line: string): void; messages: MessageQueue<ServeMessage> },
  spec: RunSpec,
  coldStart: boolean,
  signal: AbortSignal,
  killGraceMs: number,
  kill: (sig: 'SIGTERM' | 'SIGKILL') => unknown,
): Promise<RunExchange> {
  let stop: ServeStop | null = null;
  let killTimer: NodeJS.Timeout | undefined;
  let timeoutTimer: NodeJS.Timeout | undefined;
  const kills: unknown[] = [];
  const requestStop = (reason: string, timedOut: boolean): void => {
    if (stop) return;
    stop = { reason, timedOut };
    kills.push(kill('SIGTERM'));
    killTimer = setTimeout(() => kills.push(kill('SIGKILL')), killGraceMs);
  };
  const onAbort = (): void => requestStop('interrupted', false);
  serve.send(runRequest(spec, coldStart));
  if (spec.timeoutS !== null) {
    timeoutTimer = setTimeout(() => requestStop(`timed out after ${spec.timeoutS}s; the worker was killed`, true), spec.timeoutS * 1000);
  }
  if (signal.aborted) onAbort();
  else signal.addEventListener('abort', onAbort, { once: true });
  const { started, done } = await awaitAnswer(serve.messages);
  clearTimeout(timeoutTimer);
  signal.removeEventListener('abort', onAbort);
  return {
    started,
    done,
    stop: stop as ServeStop | null,
    settle: async () => {
      clearTimeout(killTimer);
      await Promise.all(kills);
    },
  };
}

/** Splits a byte stream into lines; `onLine` gets each complete one. */
export function lineSplitter(onLine: (line: string) => void): (chunk: Buffer | string) => void {
  let buf = '';
  return (chunk) => {
    buf += chunk.toString();
    let nl = buf.indexOf('\n');
    while (nl >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line) onLine(line);
      nl = buf.indexOf('\n');
    }
  };
}

/** A queue of messages a dispatch awaits one at a time; null once the worker is gone. */
export class MessageQueue<T> {
  private items: T[] = [];
  private waiters: Array<(m: T | null) => void> = [];
  private closed = false;

  push(m: T): void {
    const w = this.waiters.shift();
    if (w) w(m);
    else this.items.push(m);
  }

  close(): void {
    this.closed = true;
    for (const w of this.waiters.splice(0)) w(null);
  }

  next(): Promise<T | null> {
    const m = this.items.shift();
    if (m !== undefined) return Promise.resolve(m);
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve) => this.waiters.push(resolve));
  }
}

/**
 * The attempt token of the run a persistent worker has in flight, from the `current.json` in the
 * state directory named on its command line; null when it is idle (or not a serve process).
 */
export function serveToken(args: readonly string[], pid: number): string | null {
  const i = args.indexOf('--state-dir');
  if (!args.includes('serve') || i < 0 || i + 1 >= args.length) return null;
  try {
    const cur = JSON.parse(readFileSync(join(args[i + 1] ?? '', 'current.json'), 'utf8')) as { attempt_token?: unknown; pid?: unknown };
    return cur.pid === pid && typeof cur.attempt_token === 'string' && cur.attempt_token !== '' ? cur.attempt_token : null;
  } catch {
    return null;
  }
}
