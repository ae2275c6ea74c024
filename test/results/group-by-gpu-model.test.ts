/**
 * Results of different GPU models are never pooled unless asked (`placement.group_by: none`): stored
 * campaigns whose runs carry fake GPU models (from `placed` events, or from the result's own GPU names),
 * read through the real CLI (`results show`, its --json, the aggregate CSV).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { lem, tempDir } from '../helpers/cli.js';
import { storeCampaign } from '../helpers/stored-campaign.js';

interface ShownAggregate {
  experiment_id: string;
  gpu_model: string | null;
  gpu_models_pooled: string[];
  counts: { total: number; used: number };
  metrics: Record<string, { description: { n: number; mean: number; ci95: { low: number; high: number } | null } | null }>;
}
interface Shown {
  schema: string;
  group_by: string;
  experiments: ShownAggregate[];
}

const A = 'FAKE-GPU-A100';
const B = 'FAKE-GPU-H100';
// Four cycles on each model; the H100 runs use far less energy.
const energy = [100, 102, 98, 101, 50, 51, 49, 50.5];
const placed = [A, A, A, A, B, B, B, B];
const runs = energy.map((e) => ({ energy_total_j: e }));

let state = '';
beforeAll(() => {
  state = tempDir('lem-groupby-');
  storeCampaign(state, 'split', [{ id: 'e1e1e1e1e1e1', name: 'exp', runs, placedGpuModels: placed }]);
  storeCampaign(state, 'pooled', [{ id: 'e1e1e1e1e1e1', name: 'exp', runs, placedGpuModels: placed }], { placement: { group_by: 'none', on_host_loss: 'retry_elsewhere' } });
  storeCampaign(state, 'fromresult', [{ id: 'e1e1e1e1e1e1', name: 'exp', runs, resultGpuNames: placed }]);
  storeCampaign(state, 'onemodel', [{ id: 'e1e1e1e1e1e1', name: 'exp', runs: runs.slice(0, 4), placedGpuModels: placed.slice(0, 4) }]);
});

function show(id: string): Shown {
  const r = lem(['--state', state, 'results', 'show', id, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Shown;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

describe('aggregates by GPU model (fake GPU models)', () => {
  it('keeps runs on two GPU models apart by default: two aggregates, each with its own interval', () => {
    const doc = show('split');
    expect(doc.group_by).toBe('gpu_model');
    expect(doc.experiments.map((e) => e.gpu_model)).toEqual([A, B]);
    const [a, b] = doc.experiments;
    expect(a?.counts.total).toBe(4);
    expect(a?.metrics['energy_total_j']?.description?.mean).toBeCloseTo(mean(energy.slice(0, 4)), 9);
    expect(b?.metrics['energy_total_j']?.description?.mean).toBeCloseTo(mean(energy.slice(4)), 9);
    const ia = a?.metrics['energy_total_j']?.description?.ci95;
    const ib = b?.metrics['energy_total_j']?.description?.ci95;
    expect(ia && ib && ia.low > ib.high).toBe(true); // disjoint: nothing of one model leaked into the other
    const text = lem(['--state', state, 'results', 'show', 'split']).stdout;
    expect(text).toContain(`exp @ ${A}`);
    expect(text).toContain(`exp @ ${B}`);
    const html = join(state, 'split.html');
    const rep = lem(['--state', state, 'report', 'split', '--out', html]);
    expect(rep.code, rep.stderr).toBe(0);
    const page = readFileSync(html, 'utf8');
    expect(page).toContain(`exp @ ${A}`);
    expect(page).toContain(`exp @ ${B}`);
  });

  it('pools them when placement.group_by is none, and says so', () => {
    const doc = show('pooled');
    expect(doc.experiments).toHaveLength(1);
    const [e] = doc.experiments;
    expect(e?.gpu_model).toBeNull();
    expect(e?.gpu_models_pooled).toEqual([A, B]);
    expect(e?.metrics['energy_total_j']?.description?.n).toBe(8);
    expect(e?.metrics['energy_total_j']?.description?.mean).toBeCloseTo(mean(energy), 9);
    const text = lem(['--state', state, 'results', 'show', 'pooled']).stdout;
    expect(text).toMatch(/pools runs on 2 GPU models .*group_by is none/);
  });

  it("takes the model from the result's own GPU names when no run was placed", () => {
    expect(show('fromresult').experiments.map((e) => [e.gpu_model, e.counts.total])).toEqual([[A, 4], [B, 4]]);
  });

  it('labels the one GPU model of a campaign and keeps one aggregate; the aggregate CSV has the column', () => {
    expect(show('onemodel').experiments.map((e) => e.gpu_model)).toEqual([A]);
    const csv = lem(['--state', state, 'results', 'export', 'split', '--format', 'csv', '--by', 'experiment']);
    expect(csv.code, csv.stderr).toBe(0);
    const [header, ...rows] = csv.stdout.trim().split('\n');
    const col = header?.split(',').indexOf('gpu_model') ?? -1;
    expect(col).toBeGreaterThan(0);
    expect(rows.map((r) => r.split(',')[col])).toEqual([A, B]);
  });

  it('results compare refuses a side that spans two GPU models; SIDE@MODEL picks one', () => {
    const mixed = lem(['--state', state, 'results', 'compare', 'split/exp', `split/exp@${B}`]);
    expect(mixed.code).not.toBe(0);
    expect(mixed.stderr).toMatch(/ran on 2 GPU models .* not pooled/);
    expect(mixed.stderr).not.toMatch(/\n\s+at /); // no stack trace
    const r = lem(['--state', state, 'results', 'compare', `split/exp@${A}`, `split/exp@${B}`, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout) as { metrics: { metric: string; a: { n: number; mean: number } | null; b: { n: number; mean: number } | null }[] };
    const m = doc.metrics.find((x) => x.metric === 'energy_total_j');
    expect(m?.a).toMatchObject({ n: 4 });
    expect(m?.b?.mean).toBeCloseTo(mean(energy.slice(4)), 9);
    // Pooled campaigns compare as one set.
    expect(lem(['--state', state, 'results', 'compare', 'pooled/exp', 'split/exp@' + A]).code).toBe(0);
  });
});
