/**
 * The worker's exit codes are a contract between two languages: the worker's failure kinds and their
 * codes (images/worker/lem_worker/errors.py EXIT_CODES) must be the ones the orchestrator's retry
 * policy reads (src/campaign/retry.ts EXIT_KINDS); a code changed on one side only fails here.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EXIT_KINDS, WORKER_FAILURE_KINDS } from '../../src/campaign/retry.js';
import { ROOT } from '../helpers/cli.js';

const python = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

describe('worker exit codes agree across the contract', () => {
  it('every worker failure kind has the same exit code in Python and TypeScript', () => {
    const r = spawnSync(python, ['-c', 'import json; from lem_worker.errors import EXIT_CODES; print(json.dumps(EXIT_CODES))'], {
      cwd: ROOT,
      env: { ...process.env, PYTHONPATH: join(ROOT, 'images', 'worker') },
      encoding: 'utf8',
    });
    expect(r.status, r.stderr).toBe(0);
    const worker = JSON.parse(r.stdout) as Record<string, number>;
    expect(Object.keys(worker).sort()).toEqual([...WORKER_FAILURE_KINDS].sort());
    for (const [kind, code] of Object.entries(worker)) expect(EXIT_KINDS[code], `exit ${code}`).toBe(kind);
  });
});
