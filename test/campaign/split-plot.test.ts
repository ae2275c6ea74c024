/**
 * Split-plot (load-aware) order: engine-configuration groups in a seeded random order per cycle,
 * runs inside each group in a seeded random order; the engine key; the design recorded in a real
 * SQLite manifest; and the engine loads `campaign run --dry-run` prints.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeDesign, planCampaign } from '../../src/campaign/design.js';
import { countEngineLoads, planRuns } from '../../src/campaign/planner.js';
import { engineKey } from '../../src/config/engine-key.js';
import { ExperimentConfig } from '../../src/config/experiment.js';
import { loadCampaign } from '../../src/config/load.js';
import { Manifest } from '../../src/manifest/manifest.js';
import { systemClock } from '../../src/util/clock.js';
import { recordCampaign } from '../../src/campaign/start.js';
import { lem, tempDir } from '../helpers/cli.js';

const MODELS = ['gpt2', 'distilgpt2', 'sshleifer/tiny-gpt2'];
const BATCHES = [1, 8, 16, 32];

function gridFile(extra = ''): string {
  const file = join(tempDir('lem-splitplot-'), 'grid.yaml');
  writeFileSync(
    file,
    `campaign_name: sp\nbase_config:\n  backend: pytorch\n  model: {id: gpt2, no_weights: true, architecture: gpt2}\nvary:\n  model.id: [${MODELS.join(', ')}]\n  batching.batch_size: [${BATCHES.join(', ')}]\ncycles: 5\nthermal_gap: 0\n${extra}`,
  );
  return file;
}

const grid = loadCampaign(gridFile());
const modelOf = new Map(grid.experiments.map((e) => [e.id, e.config.backend === 'calibration' ? '' : e.config.model.id]));
const keyOf = new Map(grid.experiments.map((e) => [e.id, engineKey(e.config)]));
const plan = (seed: number) => planCampaign(grid.experiments, { ...grid.settings, seed });

describe('split-plot order', () => {
  it('is the default where engines can be reused; force_cold_start keeps the flat shuffle', () => {
    expect(grid.settings.structure).toBe('split_plot');
    const cold = loadCampaign(gridFile('force_cold_start: true\n'));
    expect(cold.settings.structure).toBe('shuffled');
    expect(planCampaign(cold.experiments, cold.settings).design.engine_loads).toBe(60); // a fresh load per run
    expect(loadCampaign(gridFile('structure: shuffled\n')).settings.structure).toBe('shuffled');
  });

  it('3 models × 4 batch sizes × 5 cycles: 15 whole plots, one stretch per engine per cycle, ≤ 15 loads against 60', () => {
    for (const seed of [1, 2, 3, 42]) {
      const { runs, design } = plan(seed);
      expect(runs).toHaveLength(60);
      expect(design.whole_plots).toBe(15);
      expect(design.engine_loads_reload_every_run).toBe(60);
      let carried = 0;
      for (let c = 1; c <= 5; c++) {
        const models = runs.filter((r) => r.cycle === c).map((r) => modelOf.get(r.experimentId));
        const stretches = models.filter((m, i) => i === 0 || m !== models[i - 1]);
        expect([...stretches].sort()).toEqual([...MODELS].sort()); // each engine in one stretch per cycle
        const prev = runs.filter((r) => r.cycle === c - 1).at(-1);
        if (prev && modelOf.get(prev.experimentId) === models[0]) carried++;
      }
      expect(design.engine_loads).toBe(15 - carried);
      expect(design.engine_loads).toBe(countEngineLoads(runs, keyOf));
    }
    // the flat shuffle of the same grid switches engines far more often
    const flat = planRuns({ experimentIds: grid.experiments.map((e) => e.id), cycles: 5, structure: 'shuffled', seed: 42 });
    expect(countEngineLoads(flat, keyOf)).toBeGreaterThan(30);
  });

  it('every run exactly once per cycle; positions dense', () => {
    const { runs } = plan(7);
    for (let c = 1; c <= 5; c++) expect(runs.filter((r) => r.cycle === c).map((r) => r.experimentId).sort()).toEqual(grid.experiments.map((e) => e.id).sort());
    expect(runs.map((r) => r.position)).toEqual(runs.map((_, i) => i));
  });

  it('is reproducible from the seed, and differs across seeds and across cycles', () => {
    expect(plan(5)).toEqual(plan(5));
    expect(plan(5).runs.map((r) => r.experimentId)).not.toEqual(plan(6).runs.map((r) => r.experimentId));
    const { runs } = plan(5);
    const perCycle = [1, 2, 3, 4, 5].map((c) => runs.filter((r) => r.cycle === c).map((r) => r.experimentId).join(','));
    expect(new Set(perCycle).size).toBeGreaterThan(1);
    const groupOrders = [1, 2, 3, 4, 5].map((c) => [...new Set(runs.filter((r) => r.cycle === c).map((r) => modelOf.get(r.experimentId)))].join(','));
    expect(new Set(groupOrders).size).toBeGreaterThan(1);
  });

  it('records the design: model.id whole-plot, batch size sub-plot', () => {
    const { design } = plan(42);
    expect(design.kind).toBe('split_plot');
    expect(design.whole_plot.factors).toEqual(['model.id']);
    expect(design.whole_plot.groups).toBe(3);
    expect(design.sub_plot.factors).toEqual(['batching.batch_size']);
    expect(design.groups.map((g) => g.experiment_ids.length)).toEqual([4, 4, 4]);
    expect(describeDesign(design)).toMatch(/whole-plot factors: model\.id.*sub-plot factors: batching\.batch_size/);
  });
});

describe('engine key', () => {
  const base = { backend: 'pytorch', model: { id: 'gpt2' } } as const;
  const key = (over: Record<string, unknown>) => engineKey(ExperimentConfig.parse({ ...base, ...over }));
  it('ignores what a loaded engine serves (batch size, decoder, prompts, token limits)', () => {
    const k = key({});
    expect(key({ batching: { batch_size: 32 } })).toBe(k);
    expect(key({ decoder: { preset: 'standard' } })).toBe(k);
    expect(key({ prompts: { source: 'synthetic', input_len: 64 } })).toBe(k);
    expect(key({ max_output_tokens: 7 })).toBe(k);
  });
  it('changes with what forces a reload (model, revision, precision, quantisation, engine arguments, devices)', () => {
    const k = key({});
    const others = [
      key({ model: { id: 'distilgpt2' } }),
      key({ model: { id: 'gpt2', revision: 'abc' } }),
      key({ precision: 'fp16' }),
      key({ quantization: { method: 'bnb_8bit' } }),
      key({ pytorch: { attn_implementation: 'sdpa' } }),
      key({ measurement: { gpu_ids: [1] } }),
    ];
    expect(new Set([k, ...others]).size).toBe(others.length + 1);
  });
  it("follows the worker's keys: extra.engine_args everywhere, vLLM's engine seed, TensorRT-LLM's token limits", () => {
    const k = key({});
    expect(key({ extra: { engine_args: { low_cpu_mem_usage: true } } })).not.toBe(k);
    const vk = (over: Record<string, unknown>) => engineKey(ExperimentConfig.parse({ backend: 'vllm', model: { id: 'gpt2' }, ...over }));
    expect(vk({ prompts: { source: 'builtin', seed: 7 } })).not.toBe(vk({ prompts: { source: 'builtin', seed: 8 } }));
    expect(vk({ max_output_tokens: 7 })).toBe(vk({}));
    const tk = (over: Record<string, unknown>) => engineKey(ExperimentConfig.parse({ backend: 'tensorrt', model: { id: 'gpt2' }, ...over }));
    expect(tk({ max_output_tokens: 7 })).not.toBe(tk({}));
  });
});

describe('design record', () => {
  it('is written with the plan into a real SQLite manifest, read back, and noted by `results show`', () => {
    const db = join(tempDir('lem-splitplot-db-'), 'lem.db');
    const m = Manifest.open(db, systemClock);
    try {
      expect(recordCampaign(m, grid, 'sp-1')).toBe(60);
      const d = m.design('sp-1');
      expect(d).toEqual(plan(grid.settings.seed).design);
      expect(m.runs('sp-1').map((r) => r.experimentId)).toEqual(plan(grid.settings.seed).runs.map((r) => r.experimentId));
    } finally {
      m.close();
    }
    const shown = lem(['--db', db, 'results', 'show', 'sp-1']);
    expect(shown.stdout).toMatch(/note: design: split-plot — whole plots are the 3 engine configuration\(s\) in each of 5 cycle\(s\) \(whole-plot factors: model\.id\)/);
    const json = JSON.parse(lem(['--db', db, 'results', 'show', 'sp-1', '--json']).stdout) as { design: { sub_plot: { factors: string[] }; note: string } };
    expect(json.design.sub_plot.factors).toEqual(['batching.batch_size']);
  });

  it('`campaign run --dry-run` prints the engine loads the plan implies (and --json)', () => {
    const file = gridFile();
    const text = lem(['campaign', 'run', file, '--dry-run']);
    expect(text.code).toBe(0);
    const { design } = plan(grid.settings.seed);
    expect(text.stdout).toContain(`engine loads: ${design.engine_loads} with warm engines (15 whole plots; reloading every run: 60)`);
    const json = lem(['campaign', 'run', file, '--dry-run', '--json']);
    const doc = JSON.parse(json.stdout) as { design: { engine_loads: number; whole_plots: number; structure: string } };
    expect(doc.design).toMatchObject({ engine_loads: design.engine_loads, whole_plots: 15, structure: 'split_plot' });
  });
});
