/** The run transition table, case by case, on a real SQLite manifest; and that nothing writes a run's status elsewhere. */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { IllegalTransitionError, Manifest, RUN_TRANSITIONS } from '../../src/manifest/manifest.js';
import { recordImportedCampaign } from '../../src/manifest/imports.js';
import { explain } from '../../src/cli/crash.js';
import { systemClock } from '../../src/util/clock.js';
import { tempDir } from '../helpers/cli.js';
import { ExperimentConfig } from '../../src/config/experiment.js';
import type { CampaignSettings } from '../../src/config/campaign.js';

const settings: CampaignSettings = { cycles: 1, structure: 'interleaved', seed: 1, thermal_gap: 0, runtime: 'local', force_cold_start: false, retries: 0, keep_services: false };

let open: Manifest[] = [];
afterEach(() => {
  for (const m of open) m.close();
  open = [];
});

function fresh(): Manifest {
  const m = Manifest.open(join(tempDir(), 'lem.db'), systemClock);
  open.push(m);
  m.createCampaign({
    id: 'c',
    name: 'c',
    sourcePath: 'c.yaml',
    settings,
    notes: [],
    experiments: [{ id: 'e', name: 'e', backend: 'calibration', config: ExperimentConfig.parse({ backend: 'calibration' }) }],
    runs: [0, 1].map((position) => ({ position, experimentId: 'e', cycle: position + 1 })),
  });
  return m;
}

const ok = { resultPath: '/r', metrics: { x: 1 }, flags: [], exitCode: 0 };

/** Runs `f`, which must throw IllegalTransitionError (exit 70) and leave the runs and the log as they were. */
function refused(m: Manifest, f: () => unknown, message: RegExp): void {
  const before = { runs: m.runs('c'), events: m.events('c') };
  let thrown: unknown = null;
  try {
    f();
  } catch (e) {
    thrown = e;
  }
  expect(thrown).toBeInstanceOf(IllegalTransitionError);
  expect((thrown as IllegalTransitionError).exitCode).toBe(70);
  expect((thrown as Error).message).toMatch(message);
  expect({ runs: m.runs('c'), events: m.events('c') }).toEqual(before);
}

describe('run transitions', () => {
  it('documents the table the README shows', () => {
    expect(RUN_TRANSITIONS).toEqual({
      pending: ['running'],
      running: ['succeeded', 'failed', 'interrupted'],
      succeeded: [],
      failed: ['running'],
      interrupted: ['running'],
    });
  });

  it('walks pending → running → failed → running → interrupted → running → succeeded, one event each', () => {
    const m = fresh();
    m.markRunning('c', 0, 1, 'tok1');
    m.setHandle('c', 0, 1, 'h1');
    m.markEnded('c', 0, 1, { status: 'failed', exitCode: 1, error: 'boom' });
    m.markRunning('c', 0, 2);
    m.markEnded('c', 0, 2, { status: 'interrupted', exitCode: null, error: 'ctrl-c' });
    m.markRunning('c', 0, 3);
    expect(m.markSucceeded('c', 0, 3, ok)).toBe(true);
    expect(m.events('c').filter((e) => e.position === 0).map((e) => `${e.kind}/${String(e.detail.attempt)}`)).toEqual([
      'run_started/1',
      'run_dispatched/1',
      'run_failed/1',
      'run_started/2',
      'run_interrupted/2',
      'run_started/3',
      'run_succeeded/3',
    ]);
    expect(m.run('c', 0)).toMatchObject({ status: 'succeeded', attempt: 3, handle: null, resultPath: '/r', error: null });
  });

  it('refuses every move the table does not allow, changing nothing', () => {
    const m = fresh();
    refused(m, () => m.markSucceeded('c', 0, 1, ok), /pending .* to succeeded.*never started/);
    refused(m, () => m.markEnded('c', 0, 0, { status: 'failed', exitCode: 1, error: 'x' }), /pending .* to failed/);
    refused(m, () => m.setHandle('c', 0, 0, 'h'), /pending .* to running.*handle/);
    refused(m, () => m.markRunning('c', 0, 0), /numbered above/);
    m.markRunning('c', 0, 1);
    refused(m, () => m.markRunning('c', 0, 2), /running .* to running.*must end/);
    refused(m, () => m.markSucceeded('c', 0, 2, ok), /never started/);
    refused(m, () => m.markEnded('c', 0, 2, { status: 'interrupted', exitCode: null, error: 'x' }), /only the attempt that is running/);
    m.markEnded('c', 0, 1, { status: 'failed', exitCode: 1, error: 'x' });
    // A second end of the same attempt (before this change it logged an event and changed nothing).
    refused(m, () => m.markEnded('c', 0, 1, { status: 'interrupted', exitCode: null, error: 'x' }), /failed .* to interrupted/);
    refused(m, () => m.setHandle('c', 0, 1, 'late'), /failed .* to running/);
    refused(m, () => m.markRunning('c', 0, 1), /numbered above/);
    m.markRunning('c', 0, 2);
    expect(m.markSucceeded('c', 0, 2, ok)).toBe(true);
    refused(m, () => m.markRunning('c', 0, 3), /already succeeded/);
    refused(m, () => m.markEnded('c', 0, 2, { status: 'failed', exitCode: 1, error: 'x' }), /succeeded .* to failed/);
    refused(m, () => m.markRunning('c', 9, 1), /does not exist|no such run/);
  });

  it('does not record a late or second result, and says so (false), changing nothing', () => {
    const m = fresh();
    m.markRunning('c', 1, 1);
    m.markEnded('c', 1, 1, { status: 'interrupted', exitCode: null, error: 'x' });
    const before = { runs: m.runs('c'), events: m.events('c') };
    expect(m.markSucceeded('c', 1, 1, ok)).toBe(false);
    expect({ runs: m.runs('c'), events: m.events('c') }).toEqual(before);
  });

  it('adds a flag only to a recorded success of that attempt, once', () => {
    const m = fresh();
    m.markRunning('c', 0, 1);
    expect(m.addFlag('c', 0, 1, 'f', {})).toBe(false);
    expect(m.markSucceeded('c', 0, 1, ok)).toBe(true);
    expect(m.addFlag('c', 0, 2, 'f', {})).toBe(false);
    expect(m.addFlag('c', 0, 1, 'f', { why: 'w' })).toBe(true);
    expect(m.addFlag('c', 0, 1, 'f', { why: 'w' })).toBe(true);
    expect(m.addFlag('c', 5, 1, 'f', {})).toBe(false);
    expect(m.run('c', 0)?.flags).toEqual(['f']);
    expect(m.events('c').filter((e) => e.kind === 'run_flagged')).toHaveLength(1);
  });

  it('lets imported runs enter only as final (succeeded or failed)', () => {
    const m = fresh();
    const base = { id: 'imp', name: 'imp', sourcePath: 'x.json', notes: [], experiments: [{ id: 'e', name: 'e', backend: 'calibration', config: {} }], sources: [], at: new Date().toISOString() };
    const run = { experimentId: 'e', cycle: 1, startedAt: null, endedAt: null, resultPath: 'x.json', metrics: {}, flags: [], error: null, detail: {} };
    expect(() => recordImportedCampaign(m, { ...base, runs: [{ ...run, status: 'running' as 'succeeded' }] })).toThrow(IllegalTransitionError);
    expect(m.campaign('imp')).toBeNull();
    recordImportedCampaign(m, { ...base, runs: [{ ...run, status: 'succeeded' }] });
    expect(m.run('imp', 0)).toMatchObject({ status: 'succeeded', attempt: 1 });
  });

  it('is reported as a bug (exit 70, crash log), not as the user’s error', () => {
    const m = fresh();
    let thrown: unknown = null;
    try {
      m.markEnded('c', 0, 1, { status: 'failed', exitCode: 1, error: 'x' });
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(IllegalTransitionError);
    expect(explain(thrown, { stateDir: '/tmp', dbPath: '/tmp/lem.db' })).toBeNull();
  });

  it('has no run status written outside src/manifest/transitions.ts', () => {
    const root = join(import.meta.dirname, '../../src');
    const files: string[] = [];
    const walk = (dir: string): void => {
      for (const name of readdirSync(dir)) {
        const p = join(dir, name);
        if (statSync(p).isDirectory()) walk(p);
        else if (p.endsWith('.ts')) files.push(p);
      }
    };
    walk(root);
    const writers = files.filter((f) => {
      const src = readFileSync(f, 'utf8');
      return /UPDATE\s+runs\s+SET(?:(?!WHERE)[^;'"`])*\bstatus\s*=/i.test(src) || /INSERT\s+INTO\s+runs\b/i.test(src);
    });
    expect(writers.map((f) => relative(root, f))).toEqual(['manifest/transitions.ts']);
  });
});
