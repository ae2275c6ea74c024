/**
 * The local runtime finds a campaign's live workers by the attempt token on their command line
 * (whether or not a handle was ever recorded) and stops them: SIGTERM, SIGKILL after the grace.
 * Real processes; the "worker" is a Python process carrying the token as the real one does.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { createLocalRuntime } from '../../src/runtime/local.js';
import { attemptToken } from '../../src/runtime/types.js';

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
});

/** A process that looks like a worker of `token`; `ignoreTerm` makes it survive SIGTERM. */
async function fakeWorker(token: string, ignoreTerm = false): Promise<ChildProcess> {
  const code = `import signal, sys, time\n${ignoreTerm ? 'signal.signal(signal.SIGTERM, signal.SIG_IGN)\n' : ''}print('up', flush=True)\ntime.sleep(300)`;
  const child = spawn('python3', ['-c', code, 'run', '--attempt-token', token], { detached: true, stdio: ['ignore', 'pipe', 'ignore'] });
  children.push(child);
  await new Promise<void>((resolve) => child.stdout?.once('data', () => resolve()));
  return child;
}

const exited = (c: ChildProcess): Promise<NodeJS.Signals | null> => new Promise((resolve) => (c.exitCode !== null || c.signalCode !== null ? resolve(c.signalCode) : c.once('exit', (_code, sig) => resolve(sig))));

describe('local runtime: live workers by attempt token', () => {
  it('finds exactly this campaign\'s workers, and stops them until they are gone', async () => {
    const id = `loc${process.pid}`;
    const mine = await fakeWorker(attemptToken(id, 3, 2));
    const stubborn = await fakeWorker(attemptToken(id, 4, 1), true);
    const other = await fakeWorker(attemptToken(`${id}-p9`, 0, 1)); // a campaign whose id extends this one
    const rt = createLocalRuntime();

    const found = await rt.findWorkers(id);
    expect(found.map((w) => w.token).sort()).toEqual([attemptToken(id, 3, 2), attemptToken(id, 4, 1)]);
    expect(found.find((w) => w.token === attemptToken(id, 3, 2))?.pid).toBe(mine.pid);

    const mineExit = exited(mine);
    const stubbornExit = exited(stubborn);
    const stopped = await rt.stopWorkers(id);
    expect(stopped).toHaveLength(2);
    expect(await mineExit).toBe('SIGTERM');
    expect(await stubbornExit).toBe('SIGKILL');
    expect(await rt.findWorkers(id)).toEqual([]);
    expect((await rt.findWorkers(`${id}-p9`)).map((w) => w.pid)).toEqual([other.pid]);
  }, 60_000);
});
