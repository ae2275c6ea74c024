/**
 * Parallel GPU sets on the real Docker engine through the built CLI, with a fake GPU list
 * (LEM_FAKE_GPUS: the engine has no GPU; services get the set's label and LEM_GPU_UUIDS, the worker
 * locks those UUIDs). The calibration workload on 2 fake GPUs, 1 GPU per run: one service per set,
 * every run succeeds once, windows on each GPU are disjoint, the two sets really ran at the same
 * time, and each set ran its runs in the campaign's plan order.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lem, lemKillAt, ROOT } from '../helpers/cli.js';
import { containersWithLabel, docker, requireEngine, runDockerTests, tempWorkspace, TEST_IMAGE, uniqueId } from '../docker/engine.js';

const projects: string[] = [];
// Two fake GPU models: each set is one model, so an experiment's runs land on both.
const FAKE = 'GPU-fake-0000=FakeA100,GPU-fake-1111=FakeH100';

describe.skipIf(!runDockerTests)('parallel GPU sets on the docker runtime (fake GPU list, real engine)', () => {
  beforeAll(requireEngine);
  afterAll(async () => {
    for (const p of projects) {
      for (const c of await containersWithLabel(`lem.project=${p}`)) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
    }
  });

  it('runs on disjoint fake GPU sets side by side: one service per set, disjoint windows per GPU, plan order per set', async () => {
    const dir = tempWorkspace('lem-gpusets-');
    const project = uniqueId('lemsets').toLowerCase().replace(/[^a-z0-9-]/g, '');
    projects.push(project);
    // This checkout's worker over the image's copy (it locks the set's GPUs named in LEM_GPU_UUIDS).
    writeFileSync(
      join(dir, 'docker-compose.yml'),
      `name: ${project}\nservices:\n  cpu:\n    image: ${TEST_IMAGE}\n    volumes:\n      - ${join(ROOT, 'images/worker/lem_worker')}:/opt/lem/worker/lem_worker:ro\n`,
    );
    writeFileSync(
      join(dir, 'campaign.yaml'),
      `campaign_name: gpusets
base_config:
  backend: calibration
  measurement: { idle_baseline_s: 0.3, min_window_s: 0, gpus: 1 }
  calibration: { duration_s: 1.5 }
vary:
  calibration.matrix_size: [32, 48]
cycles: 3
structure: shuffled
seed: 5
thermal_gap: 0
runtime: docker
retries: 0
keep_services: true
`,
    );
    const state = join(dir, 'state');
    mkdirSync(state);
    const lockDir = join(dir, 'locks');
    const r = await lemKillAt(['--state', state, 'campaign', 'run', join(dir, 'campaign.yaml')], { LEM_COMPOSE_FILE: join(dir, 'docker-compose.yml'), LEM_FAKE_GPUS: FAKE, LEM_LOCK_DIR: lockDir }, null, () => false);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/completed — 6 succeeded/);
    const id = /campaign (gpusets-\S+):/.exec(r.stderr)?.[1] as string;

    const db = new Database(join(state, 'lem.db'), { readonly: true });
    const runs = db.prepare('SELECT position, status FROM runs WHERE campaign_id = ? ORDER BY position').all(id) as Array<{ position: number; status: string }>;
    const placed = db
      .prepare("SELECT seq, position, json_extract(detail_json, '$.gpu_set') AS gpu_set, json_extract(detail_json, '$.gpus') AS gpus FROM events WHERE campaign_id = ? AND kind = 'placed' ORDER BY seq")
      .all(id) as Array<{ seq: number; position: number; gpu_set: string; gpus: string }>;
    const succeeded = db.prepare("SELECT position FROM events WHERE campaign_id = ? AND kind = 'run_succeeded'").all(id) as Array<{ position: number }>;
    const windows = db.prepare('SELECT position, device, started_at, ended_at FROM windows WHERE campaign_id = ?').all(id) as Array<{ position: number; device: string; started_at: string; ended_at: string }>;
    const flagged = db.prepare("SELECT COUNT(*) AS n FROM runs WHERE campaign_id = ? AND flags_json LIKE '%overlapping_window%'").get(id) as { n: number } | undefined;
    db.close();

    expect(runs.map((x) => x.status)).toEqual(Array(6).fill('succeeded'));
    expect(succeeded.map((s) => s.position).sort()).toEqual(runs.map((x) => x.position));
    // Both sets were used, each run on one set, and within a set in the plan's order (positions).
    expect(new Set(placed.map((p) => p.gpu_set))).toEqual(new Set(['local/0', 'local/1']));
    expect(placed).toHaveLength(6);
    for (const set of ['local/0', 'local/1']) {
      const order = placed.filter((p) => p.gpu_set === set).map((p) => p.position);
      expect(order).toEqual([...order].sort((a, b) => a - b));
    }
    // The worker locked (and recorded windows on) exactly the set's GPU, never the host (`cpu`).
    expect(new Set(windows.map((w) => w.device))).toEqual(new Set(['GPU-fake-0000', 'GPU-fake-1111']));
    for (const w of windows) {
      const p = placed.find((x) => x.position === w.position);
      expect(JSON.parse(p?.gpus ?? '[]')).toEqual([w.device]);
    }
    const overlaps = (a: (typeof windows)[number], b: (typeof windows)[number]): boolean => a.started_at < b.ended_at && b.started_at < a.ended_at;
    const sameGpu: string[] = [];
    let acrossGpus = 0;
    for (const [i, a] of windows.entries()) {
      for (const b of windows.slice(i + 1)) {
        if (!overlaps(a, b)) continue;
        if (a.device === b.device) sameGpu.push(`${a.position}/${b.position} on ${a.device}`);
        else acrossGpus++;
      }
    }
    expect(sameGpu).toEqual([]);
    expect(flagged?.n ?? 0).toBe(0);
    expect(acrossGpus).toBeGreaterThan(0); // the two sets really measured at the same time
    const shown = JSON.parse(lem(['--state', state, 'results', 'show', id, '--json']).stdout) as { experiments: Array<{ experiment_id: string; gpu_model: string | null; counts: { total: number } }> };
    // Each experiment's runs on the two fake models are two aggregates, never one pool: per experiment
    // and model, the runs placed on that model's set.
    const runExp = new Map(db2(state, id).map((x) => [x.position, x.experiment_id]));
    const modelOf = (set: string): string => (set === 'local/0' ? 'FakeA100' : 'FakeH100');
    const expected = new Map<string, number>();
    for (const p of placed) {
      const k = `${runExp.get(p.position) ?? ''}|${modelOf(p.gpu_set)}`;
      expected.set(k, (expected.get(k) ?? 0) + 1);
    }
    expect(new Map(shown.experiments.map((e) => [`${e.experiment_id}|${e.gpu_model ?? ''}`, e.counts.total]))).toEqual(expected);

    // One service container per set, labelled with its GPUs, LEM_GPU_UUIDS set, no device request (fake list).
    const containers = await containersWithLabel(`lem.campaign=${id}`);
    expect(containers.map((c) => c.Labels['lem.gpus']).sort()).toEqual(['GPU-fake-0000', 'GPU-fake-1111']);
    for (const c of containers) {
      const info = await docker.getContainer(c.Id).inspect();
      expect(info.Config.Env).toContain(`LEM_GPU_UUIDS=${c.Labels['lem.gpus']}`);
      expect(info.HostConfig.DeviceRequests ?? []).toEqual([]);
      expect(c.Labels['lem.gpu-set']).toMatch(/^local\/[01]$/);
    }
  }, 180_000);
});

function db2(state: string, id: string): Array<{ position: number; experiment_id: string }> {
  const db = new Database(join(state, 'lem.db'), { readonly: true });
  try {
    return db.prepare('SELECT position, experiment_id FROM runs WHERE campaign_id = ?').all(id) as Array<{ position: number; experiment_id: string }>;
  } finally {
    db.close();
  }
}
