/**
 * Preflight on the local runtime: the worker's `probe --json` in the interpreter the runs will use,
 * with the experiment configs on stdin. A missing interpreter or an unimportable worker is a problem
 * named with its fix, not a crash.
 */
import { spawn } from 'node:child_process';
import type { ProbeOutcome } from './types.js';

export function probeLocal(python: string, env: NodeJS.ProcessEnv, configs: readonly unknown[], timeoutMs = 60_000): Promise<ProbeOutcome> {
  const where = `the local interpreter ${python}`;
  return new Promise((resolve) => {
    const child = spawn(python, ['-m', 'lem_worker', 'probe', '--json', '--configs', '-'], { env: { ...env, PYTHONUNBUFFERED: '1' }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.stdin.on('error', () => undefined); // an interpreter that exits at once closes its stdin
    child.once('error', (err) => {
      clearTimeout(timer);
      resolve({ ok: false, where, problem: `cannot start ${python}: ${err.message}`, fix: 'install Python 3 (python3 on PATH) or set LEM_PYTHON to an interpreter' });
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      if (code !== 0) {
        const why = stderr.trim().split('\n').slice(-1)[0] ?? '';
        const noWorker = /No module named '?lem_worker/.test(stderr);
        resolve({
          ok: false,
          where,
          problem: noWorker ? `the worker (lem_worker) is not importable by ${python}` : `the worker's probe exited ${code ?? 'by a signal'}: ${why.slice(0, 300)}`,
          fix: noWorker ? 'run lem from its checkout or package (images/worker must be on PYTHONPATH), or set LEM_PYTHON' : null,
        });
        return;
      }
      try {
        resolve({ ok: true, where, report: JSON.parse(stdout) as unknown });
      } catch {
        resolve({ ok: false, where, problem: `the worker's probe printed no JSON: ${stdout.slice(0, 200)}`, fix: null });
      }
    });
    child.stdin.end(JSON.stringify(configs));
  });
}
