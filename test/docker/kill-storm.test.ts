/**
 * Reliability (slow, run in CI): kill -9 the orchestrator at 20 seeded random moments across a
 * docker-runtime campaign (the cpu service, short calibration runs, thermal_gap 0) and resume each
 * time. At the end every run succeeded exactly once, every result file on disk is the one recorded
 * for its run (none orphaned, none counted twice), no two measured windows overlap, and no
 * container is left behind.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRng } from '../../src/util/random.js';
import { lemKillAt } from '../helpers/cli.js';
import { containersWithLabel, docker, requireEngine, runDockerTests, tempWorkspace, TEST_IMAGE, uniqueId } from './engine.js';

const KILLS = 20;

function resultFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((p) => p.endsWith('result.json'))
    .map((p) => join(dir, p));
}

describe.runIf(runDockerTests)('kill storm on the docker runtime', () => {
  let project = '';
  beforeAll(requireEngine);
  afterAll(async () => {
    for (const c of await containersWithLabel(`lem.project=${project}`)) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
  });

  // Enough runs that the campaign cannot end before the last kill: a killed session completes about one
  // run (a fast one more), so 8 cycles (16 runs) sometimes finished after 17 kills; 24 cycles leave room.
  const CYCLES = 24;
  const RUNS = 2 * CYCLES;

  it(`kill -9 at ${KILLS} seeded random moments, resume each time: every run succeeds exactly once`, async () => {
    const dir = tempWorkspace('lem-kill-storm-');
    project = uniqueId('lemstorm').toLowerCase().replace(/[^a-z0-9-]/g, '');
    const compose = join(dir, 'docker-compose.yml');
    writeFileSync(compose, `name: ${project}\nservices:\n  cpu:\n    image: ${TEST_IMAGE}\n`);
    const file = join(dir, 'storm.yaml');
    writeFileSync(
      file,
      `campaign_name: storm
base_config:
  backend: calibration
  measurement: { idle_baseline_s: 0, min_window_s: 0 }
  calibration: { duration_s: 0.6 }
vary:
  calibration.matrix_size: [16, 24]
cycles: ${CYCLES}
thermal_gap: 0
runtime: docker
retries: 0
`,
    );
    const state = join(dir, 'state');
    const env = { LEM_COMPOSE_FILE: compose };
    const rng = createRng('docker-kill-storm');
    const first = await lemKillAt(['--state', state, 'campaign', 'run', file], env, rng.int(1500), (s) => /campaign storm-\S+:/.test(s));
    const id = /campaign (storm-\S+):/.exec(first.stderr)?.[1] as string;
    expect(id, first.stderr).toBeDefined();
    let kills = first.killed ? 1 : 0;
    let finished = false;
    for (let i = 0; i < 60 && kills < KILLS && !finished; i++) {
      // A random moment: during start-up (recovery, adopting the service), or after the session's
      // first or second run started (mid-run, at its edges, or between runs).
      const after = Math.max(0, rng.int(4) - 1);
      const armed = after === 0 ? () => true : (s: string) => (s.match(/^\[\d+\/\d+\]/gm) ?? []).length >= after;
      const r = await lemKillAt(['--state', state, 'campaign', 'resume', id], env, after === 0 ? 100 + rng.int(1500) : rng.int(1500), armed);
      if (r.killed) kills++;
      else finished = r.code === 0;
    }
    const final = await lemKillAt(['--state', state, 'campaign', 'resume', id], env, null, () => false);
    expect(final.code, final.stderr).toBe(0);
    expect(final.stdout).toMatch(new RegExp(`completed — ${RUNS} succeeded`));
    expect(kills).toBe(KILLS);

    const db = new Database(join(state, 'lem.db'), { readonly: true });
    const runs = db.prepare('SELECT position, status, attempt, result_path FROM runs ORDER BY position').all() as Array<{ position: number; status: string; attempt: number; result_path: string }>;
    const events = db.prepare('SELECT position, kind FROM events WHERE position IS NOT NULL ORDER BY seq').all() as Array<{ position: number; kind: string }>;
    db.close();
    expect(runs.map((r) => r.status)).toEqual(Array(RUNS).fill('succeeded'));
    for (const r of runs) {
      expect(events.filter((e) => e.position === r.position && (e.kind === 'run_succeeded' || e.kind === 'run_recovered'))).toHaveLength(1);
    }
    // Every result file on disk is a recorded one, each recorded once (no orphan, no double count).
    const onDisk = resultFiles(join(state, 'runs', id)).sort();
    expect(onDisk).toEqual(runs.map((r) => r.result_path).sort());
    // No measured window overlaps another (one measurement on the device at a time).
    const windows = runs
      .map((r) => JSON.parse(readFileSync(r.result_path, 'utf8')) as { started_at: string; ended_at: string })
      .map((w) => [Date.parse(w.started_at), Date.parse(w.ended_at)] as const)
      .sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < windows.length; i++) expect(windows[i]![0]).toBeGreaterThanOrEqual(windows[i - 1]![1]);
    // The kills hit runs in flight.
    expect(events.some((e) => e.kind === 'run_interrupted' || e.kind === 'run_recovered')).toBe(true);
    expect(await containersWithLabel(`lem.project=${project}`)).toEqual([]);
    // Nor a preflight probe container of a killed lem: a probe's worker ends when its stdin closes,
    // and the engine removes the container then (it may take a moment after the last kill); one
    // killed between its create and its start is removed by the next lem's sweep (throwaway.ts).
    let probes = await containersWithLabel(`lem.probe=${project}`);
    for (let i = 0; i < 50 && probes.length > 0; i++) {
      await new Promise((r) => setTimeout(r, 200));
      probes = await containersWithLabel(`lem.probe=${project}`);
    }
    expect(probes.map((c) => `${c.Id.slice(0, 12)} ${c.Status}`)).toEqual([]);
  }, 300_000);
});
