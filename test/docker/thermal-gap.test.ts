/**
 * A temperature-aware thermal gap on the docker runtime: the gap polls `lem_worker thermal` by an
 * exec into the run's service container (here playing the worker's fake cooling curve, set through
 * the compose service's environment), and each gap is recorded.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { containersWithLabel, docker, requireEngine, runDockerTests, tempWorkspace, TEST_IMAGE, uniqueId } from './engine.js';

const ROOT = resolve(import.meta.dirname, '../..');

describe.runIf(runDockerTests)('thermal gap on the docker runtime', () => {
  let project = '';
  beforeAll(requireEngine);
  afterAll(async () => {
    for (const c of await containersWithLabel(`lem.project=${project}`)) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
  });

  it('polls the fake GPU through the service container until it has cooled', () => {
    const dir = tempWorkspace('lem-docker-gap-');
    const state = join(dir, 'state');
    mkdirSync(state, { recursive: true });
    // Service containers mount only the campaign's run directory: the fake GPU comes in through a
    // compose volume of its own, writable by the (non-root) worker, which heats it after each burn.
    const fakeDir = join(dir, 'fake');
    mkdirSync(fakeDir, { recursive: true });
    chmodSync(fakeDir, 0o777);
    const fake = join(fakeDir, 'fake-gpu.json');
    writeFileSync(fake, JSON.stringify({ idle_c: 35, hot_c: 80, tau_s: 3 }));
    chmodSync(fake, 0o666);
    project = uniqueId('lemgap').toLowerCase().replace(/[^a-z0-9-]/g, '');
    const compose = join(dir, 'docker-compose.yml');
    writeFileSync(compose, `name: ${project}\nservices:\n  cpu:\n    image: ${TEST_IMAGE}\n    environment:\n      LEM_FAKE_THERMAL: ${fake}\n    volumes:\n      - ${fakeDir}:${fakeDir}\n`);
    const file = join(dir, 'gap.yaml');
    writeFileSync(
      file,
      `campaign_name: dockgap
configs:
  - backend: calibration
    calibration: {duration_s: 0.1, matrix_size: 16}
    measurement: {min_window_s: 0, idle_baseline_s: 0}
cycles: 2
runtime: docker
retries: 0
thermal_gap: {min_s: 0.2, max_s: 60, until_temp_c: 50}
`,
    );
    const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'lem.js'), '--state', state, 'campaign', 'run', file], {
      cwd: ROOT,
      env: { ...process.env, LEM_COMPOSE_FILE: compose },
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect(r.status, r.stderr).toBe(0);
    const db = new Database(join(state, 'lem.db'), { readonly: true });
    const gaps = (db.prepare("SELECT detail_json FROM events WHERE kind = 'thermal_gap'").all() as Array<{ detail_json: string }>).map(
      (g) => JSON.parse(g.detail_json) as { reason: string; start_temp_c: number; end_temp_c: number },
    );
    db.close();
    expect(gaps).toHaveLength(1);
    expect(gaps[0]).toMatchObject({ reason: 'reached' });
    expect(gaps[0]?.start_temp_c).toBeGreaterThan(50);
    expect(gaps[0]?.end_temp_c).toBeLessThanOrEqual(50);
  }, 150_000);
});
