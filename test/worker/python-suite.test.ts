/**
 * Runs the Python worker's own unittest suite under each interpreter a user may have:
 * the `python3` on PATH (the local runtime's default) and Debian's /usr/bin/python3, which has
 * CPU PyTorch in CI (the torch-backed harness tests run there). In CI both are required.
 * It also type-checks the worker with Debian's mypy (apt package `mypy`), against Debian's torch stubs.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/cli.js';

const WORKER = join(ROOT, 'images', 'worker');

function which(cmd: string): string | null {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

function runSuite(python: string) {
  return spawnSync(python, ['-m', 'unittest', 'discover', '-v', '-s', join(WORKER, 'tests'), '-t', WORKER], {
    cwd: WORKER,
    encoding: 'utf8',
    env: { ...process.env, PYTHONPATH: WORKER },
    timeout: 600_000,
  });
}

const pathPython = which('python3');
const debianPython = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : null;
const interpreters = [...new Set([pathPython, debianPython].filter((p): p is string => p !== null))];

describe('python worker unit tests', () => {
  it('has an interpreter to run them with', () => {
    expect(interpreters.length).toBeGreaterThan(0);
  });

  for (const py of interpreters) {
    it(`pass under ${py}${realpathSync(py) !== py ? ` (${realpathSync(py)})` : ''}`, () => {
      const r = runSuite(py);
      const out = `${r.stdout}\n${r.stderr}`;
      const ran = /Ran (\d+) tests?/.exec(out);
      expect(ran, out.slice(-3000)).not.toBeNull();
      expect(Number(ran?.[1])).toBeGreaterThan(0);
      expect(r.status, out.slice(-3000)).toBe(0);
      if (process.env['CI'] && py === debianPython) {
        // In CI Debian's torch is installed, so the torch-backed tests must have run, not skipped.
        expect(out, 'torch tests skipped in CI').not.toMatch(/skipped 'torch is not installed/);
      }
    }, 600_000);
  }
});

function hasMypy(): boolean {
  if (debianPython === null) return false;
  const r = spawnSync(debianPython, ['-m', 'mypy', '--version'], { encoding: 'utf8' });
  return r.status === 0;
}

const mypyAvailable = hasMypy();
const MYPY_MISSING = '/usr/bin/python3 -m mypy is not available (apt-get install mypy)';

describe('python worker type check', () => {
  if (!mypyAvailable && !process.env['CI']) {
    console.warn(`skipping the worker's mypy check: ${MYPY_MISSING}`);
  }

  // CI installs mypy, so there a missing mypy fails the test instead of skipping it.
  it.skipIf(!mypyAvailable && !process.env['CI'])('is clean under mypy --config-file mypy.ini lem_worker', () => {
    expect(mypyAvailable, MYPY_MISSING).toBe(true);
    const r = spawnSync('/usr/bin/python3', ['-m', 'mypy', '--config-file', 'mypy.ini', 'lem_worker'], {
      cwd: WORKER,
      encoding: 'utf8',
      timeout: 300_000,
    });
    const out = `${r.stdout}\n${r.stderr}`;
    expect(r.error, out).toBeUndefined();
    expect(r.status, out.slice(-6000)).toBe(0);
  }, 300_000);
});
