/**
 * `docker exec` through the engine API: short captured commands (health checks, kills) and the
 * pieces a streamed worker dispatch needs (reliable exit codes, in-container process kills).
 */
import { Writable } from 'node:stream';
import type Docker from 'dockerode';
import { statusCode } from './engine.js';

export interface ExecResult {
  /** null when the engine never reported one (container gone mid-exec). */
  exitCode: number | null;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  env?: string[];
  user?: string;
  workingDir?: string;
  /** Give up waiting for the command after this long (the process is left to the caller). */
  timeoutMs?: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * The exec's exit code, once the engine has recorded it. The stream can end a moment before the
 * engine flips Running to false, so poll briefly while it is still running / null.
 */
export async function waitExecExit(exec: Docker.Exec, maxWaitMs = 5_000): Promise<number | null> {
  const deadline = Date.now() + maxWaitMs;
  for (let delay = 5; ; delay = Math.min(delay * 2, 100)) {
    let info: Docker.ExecInspectInfo;
    try {
      info = await exec.inspect();
    } catch (err) {
      if (statusCode(err) === 404) return null; // the container (and its execs) are gone
      throw err;
    }
    if (!info.Running && info.ExitCode !== null && info.ExitCode !== undefined) return info.ExitCode;
    if (Date.now() >= deadline) return info.Running ? null : (info.ExitCode ?? null);
    await sleep(delay);
  }
}

function collector(limit = 64 * 1024): { sink: Writable; text: () => string } {
  const chunks: Buffer[] = [];
  let size = 0;
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      if (size < limit) {
        chunks.push(chunk);
        size += chunk.length;
      }
      cb();
    },
  });
  return { sink, text: () => Buffer.concat(chunks).toString('utf8').slice(0, limit) };
}

/** Runs a command in a running container and captures its output. */
export async function execCapture(docker: Docker, containerId: string, cmd: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const exec = await docker.getContainer(containerId).exec({
    Cmd: cmd,
    AttachStdout: true,
    AttachStderr: true,
    Tty: false,
    ...(opts.env ? { Env: opts.env } : {}),
    ...(opts.user ? { User: opts.user } : {}),
    ...(opts.workingDir ? { WorkingDir: opts.workingDir } : {}),
  });
  const stream = await exec.start({ hijack: false, stdin: false, Detach: false });
  const out = collector();
  const err = collector();
  docker.modem.demuxStream(stream, out.sink, err.sink);
  await new Promise<void>((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    const done = (): void => {
      clearTimeout(timer);
      resolve();
    };
    stream.once('end', done);
    stream.once('close', done);
    stream.once('error', done);
    if (opts.timeoutMs !== undefined) {
      timer = setTimeout(() => {
        stream.destroy();
        done();
      }, opts.timeoutMs);
    }
  });
  const exitCode = await waitExecExit(exec, 2_000);
  return { exitCode, stdout: out.text(), stderr: err.text() };
}

/**
 * The Python the in-container scripts below share: a process is identified by pid + start time
 * (field 22 of /proc/PID/stat) so a recycled pid is never hit; kill_tree signals it and its descendants.
 */
const PROC_PY = `
import os, sys, time
def stat(p):
    try:
        with open('/proc/%d/stat' % p) as f:
            return f.read().rsplit(')', 1)[1].split()
    except (OSError, IndexError):
        return None
def running(p, start):
    s = stat(p)
    return s is not None and s[0] not in ('Z', 'X') and s[19] == start
def kill_tree(root, sig):
    kids = {}
    for d in os.listdir('/proc'):
        if d.isdigit():
            s = stat(int(d))
            if s:
                kids.setdefault(int(s[1]), []).append(int(d))
    todo = [root]
    while todo:
        p = todo.pop()
        todo.extend(kids.get(p, []))
        try:
            os.kill(p, sig)
        except OSError:
            pass
`;

/**
 * Signals an exec'd process and its descendants. Exit 0: signalled or already gone; with SIGKILL it
 * also waits (≤ 3 s) until the process is really gone (exit 3 if not).
 */
const KILL_TREE_PY = `${PROC_PY}
pid, start, sig = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
if not running(pid, start):
    sys.exit(0)
kill_tree(pid, sig)
if sig == 9:
    for _ in range(150):
        if not running(pid, start):
            sys.exit(0)
        time.sleep(0.02)
    sys.exit(3)
`;

/** Is the exec'd process (pid + start time) still alive in the container? */
const ALIVE_PY = `${PROC_PY}
sys.exit(0 if running(int(sys.argv[1]), sys.argv[2]) else 1)
`;

/** Sends `signal` (15 or 9) to the exec'd process tree inside the container. Best effort. */
export async function killInContainer(docker: Docker, containerId: string, pid: number, startTime: string, signal: 15 | 9): Promise<ExecResult> {
  return execCapture(docker, containerId, ['python3', '-c', KILL_TREE_PY, String(pid), startTime, String(signal)], { user: '0', timeoutMs: 10_000 });
}

export async function processAlive(docker: Docker, containerId: string, pid: number, startTime: string): Promise<boolean> {
  const r = await execCapture(docker, containerId, ['python3', '-c', ALIVE_PY, String(pid), startTime], { user: '0', timeoutMs: 10_000 });
  return r.exitCode === 0;
}

/**
 * The shell wrapper around every dispatched command: prints `LEMPID <pid> <starttime>` as the first
 * stdout line, then execs the command (same pid), so lem can kill exactly that process later.
 */
export const PID_WRAPPER =
  'read -r _1 _2 _3 _4 _5 _6 _7 _8 _9 _10 _11 _12 _13 _14 _15 _16 _17 _18 _19 _20 _21 st _rest < /proc/$$/stat; ' +
  'printf "LEMPID %s %s\\n" "$$" "$st"; exec "$@"';

/**
 * A stdout sink that takes the `LEMPID` first line off the stream (reporting it) and passes the
 * rest through to `out`.
 */
export function pidLineFilter(out: Writable, onPid: (pid: number, startTime: string) => void): Writable {
  let pending: Buffer | null = Buffer.alloc(0);
  return new Writable({
    write(chunk: Buffer, _enc, cb) {
      if (pending === null) {
        out.write(chunk, cb);
        return;
      }
      pending = Buffer.concat([pending, chunk]);
      const nl = pending.indexOf(0x0a);
      if (nl < 0 && pending.length < 256) {
        cb();
        return;
      }
      const first = nl < 0 ? '' : pending.subarray(0, nl).toString('utf8');
      const m = /^LEMPID (\d+) (\d+)$/.exec(first);
      const rest = m ? pending.subarray(nl + 1) : pending;
      pending = null;
      if (m) onPid(Number(m[1]), m[2] ?? '');
      if (rest.length > 0) out.write(rest, cb);
      else cb();
    },
    final(cb) {
      if (pending && pending.length > 0) out.write(pending);
      pending = null;
      cb();
    },
  });
}

/**
 * Python run inside a service container to find (and with `stop`, stop) the workers whose
 * `--attempt-token` argument starts with a prefix, or persistent workers whose run in flight
 * (STATE_DIR/current.json) has such a token: prints one `pid token` line per worker found;
 * stop sends SIGTERM to each one's process tree, SIGKILL after the grace, and waits until they
 * are gone (exit 3 when one is still there).
 */
const WORKERS_PY = `${PROC_PY}
import json
prefix, mode, grace = sys.argv[1], sys.argv[2], float(sys.argv[3])
me = os.getpid()
def token(p):
    try:
        with open('/proc/%d/cmdline' % p, 'rb') as f:
            args = f.read().decode('utf-8', 'replace').split('\\0')
    except OSError:
        return None
    if '--attempt-token' in args:
        i = args.index('--attempt-token')
        if i + 1 < len(args) and args[i + 1].startswith(prefix):
            return args[i + 1]
    elif 'serve' in args and '--state-dir' in args:
        # a persistent worker: the run in flight is named in STATE_DIR/current.json
        i = args.index('--state-dir')
        try:
            with open(os.path.join(args[i + 1], 'current.json')) as f:
                cur = json.load(f)
        except (OSError, ValueError, IndexError):
            return None
        t = cur.get('attempt_token') if isinstance(cur, dict) else None
        if cur.get('pid') == p and isinstance(t, str) and t.startswith(prefix):
            return t
    return None
def scan():
    out = {}
    for d in os.listdir('/proc'):
        if d.isdigit() and int(d) != me:
            t = token(int(d))
            s = stat(int(d))
            if t is not None and s is not None and s[0] not in ('Z', 'X'):
                out[int(d)] = (t, s[19])
    return out
found = scan()
for pid, (t, _) in sorted(found.items()):
    print('%d %s' % (pid, t), flush=True)
if mode != 'stop' or not found:
    sys.exit(0)
def alive(pid):
    return running(pid, found[pid][1])
def kill_trees(sig):
    for root in [p for p in found if alive(p)]:
        kill_tree(root, sig)
def wait(seconds):
    end = time.time() + seconds
    while time.time() < end and any(alive(p) for p in found):
        time.sleep(0.05)
kill_trees(15)
wait(grace)
kill_trees(9)
wait(5)
sys.exit(3 if any(alive(p) for p in found) else 0)
`;

/** Workers (pid, token) in a container whose attempt token starts with `prefix`; with stop, stopped. */
export async function workersInContainer(
  docker: Docker,
  containerId: string,
  prefix: string,
  mode: 'find' | 'stop',
  graceS: number,
): Promise<{ workers: Array<{ pid: number; token: string }>; result: ExecResult }> {
  const result = await execCapture(docker, containerId, ['python3', '-c', WORKERS_PY, prefix, mode, String(graceS)], {
    user: '0',
    timeoutMs: (graceS + 15) * 1000,
  });
  const workers: Array<{ pid: number; token: string }> = [];
  for (const line of result.stdout.split('\n')) {
    const m = /^(\d+) (\S+)$/.exec(line.trim());
    if (m) workers.push({ pid: Number(m[1]), token: m[2] ?? '' });
  }
  return { workers, result };
}
