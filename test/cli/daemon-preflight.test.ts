/**
 * `lem daemon run | start FILE` go through the same preflight as `lem campaign run` (real CLI, local
 * runtime, real SQLite): an interpreter that does not exist fails preflight with exit 2, every
 * problem and its fix, no stack trace, no campaign row and (start) no detached daemon.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { lem, ROOT, tempDir } from '../helpers/cli.js';

const SCHEDULED = join(ROOT, 'test', 'fixtures', 'campaigns', 'scheduled.yaml');
const NO_PYTHON = { LEM_PYTHON: '/nonexistent/python3' };

describe('daemon preflight (CLI)', () => {
  for (const verb of ['run', 'start'] as const) {
    it(`daemon ${verb} with a missing local interpreter exits 2 before recording a campaign`, () => {
      const state = tempDir(`lem-daemon-pre-${verb}-`);
      const r = lem(['--state', state, 'daemon', verb, SCHEDULED], { env: NO_PYTHON });
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/preflight failed: 1 problem\(s\); nothing was recorded or started/);
      expect(r.stderr).toContain('cannot start /nonexistent/python3');
      expect(r.stderr).toContain('set LEM_PYTHON');
      expect(r.stderr).not.toMatch(/at .*\.js:\d+/); // no stack trace
      expect(existsSync(join(state, 'daemon'))).toBe(false); // no daemon log, no detached daemon's output
      const list = lem(['--state', state, 'campaign', 'list', '--json']);
      expect((JSON.parse(list.stdout) as { campaigns: unknown[] }).campaigns).toEqual([]);
    });
  }
});
