/**
 * Campaign wall time with a FAKE engine whose load takes L seconds (bench/fake-engine.ts), through
 * the real planner, manifest, runner and aggregation: the 3 models × 4 batch sizes × 5 cycles grid
 * with warm engines and split-plot order against reloading every run (flat shuffle, one load per
 * run). Prints the loads, the wall-time ratio and whether the J/token of each experiment agrees
 * between the two (each mean inside the other's 95 % interval).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { planCampaign } from '../src/campaign/design.js';
import { executeCampaign, type ProgressSink } from '../src/campaign/runner.js';
import { loadCampaign } from '../src/config/load.js';
import { Manifest } from '../src/manifest/manifest.js';
import { aggregate } from '../src/results/aggregate.js';
import { campaignRecords } from '../src/results/records.js';
import { systemClock } from '../src/util/clock.js';
import { fakeEngineRuntime, fakeJoulesPerToken } from './fake-engine.js';
import type { Figure } from './figure.js';

const silent: ProgressSink = { note: () => undefined, runStarted: () => undefined, runEnded: () => undefined, waiting: () => undefined };

interface ModeResult {
  wallS: number;
  loads: number;
  plannedLoads: number;
  jpt: Map<string, { mean: number; low: number; high: number; truth: number }>;
}

async function runMode(dir: string, mode: 'warm' | 'cold', loadS: number, runS: number): Promise<ModeResult> {
  const file = join(dir, `${mode}.yaml`);
  writeFileSync(
    file,
    `campaign_name: sim-${mode}\nbase_config:\n  backend: pytorch\n  model: {id: gpt2, no_weights: true, architecture: gpt2}\n  max_output_tokens: 64\n` +
      `vary:\n  model.id: [gpt2, distilgpt2, sshleifer/tiny-gpt2]\n  batching.batch_size: [1, 4, 8, 32]\ncycles: 5\nthermal_gap: 0\nretries: 0\n` +
      (mode === 'warm' ? 'structure: split_plot\n' : 'structure: shuffled\nforce_cold_start: true\n'),
  );
  const c = loadCampaign(file);
  const { runs, design } = planCampaign(c.experiments, c.settings);
  const m = Manifest.open(join(dir, `${mode}.db`), systemClock);
  try {
    const id = `sim-${mode}`;
    m.createCampaign({ id, name: c.name, sourcePath: file, settings: c.settings, notes: [], experiments: c.experiments, runs, design });
    const rt = fakeEngineRuntime({ loadS, runS, warm: mode === 'warm', seed: `fake-engine-noise:${mode}` });
    const t0 = performance.now();
    const outcome = await executeCampaign(id, { manifest: m, runtime: rt, clock: systemClock, workspaceRoot: dir, progress: silent }, new AbortController().signal);
    const wallS = (performance.now() - t0) / 1000;
    if (outcome.succeeded !== 60) throw new Error(`simulated campaign ${mode}: ${outcome.succeeded} of 60 succeeded`);
    const rec = campaignRecords(m, id);
    const agg = aggregate(rec.runs, rec.experiments, { seed: 1, metrics: ['j_per_output_token'] });
    const jpt = new Map<string, { mean: number; low: number; high: number; truth: number }>();
    const cfgOf = new Map(c.experiments.map((e) => [e.id, e.config]));
    for (const e of agg.experiments) {
      const d = e.metrics['j_per_output_token']?.description;
      const cfg = cfgOf.get(e.experimentId);
      if (!d?.ci95 || d.mean === null || !cfg || cfg.backend === 'calibration') continue;
      jpt.set(e.experimentId, { mean: d.mean, low: d.ci95.low, high: d.ci95.high, truth: fakeJoulesPerToken(cfg.model.id, cfg.batching.batch_size) });
    }
    return { wallS, loads: rt.loads, plannedLoads: mode === 'warm' ? design.engine_loads : design.engine_loads_reload_every_run, jpt };
  } finally {
    m.close();
  }
}

export async function benchCampaignSim(loadS = 0.25, runS = 0.02): Promise<Figure[]> {
  const dir = mkdtempSync(join(tmpdir(), 'lem-bench-sim-'));
  try {
    const warm = await runMode(dir, 'warm', loadS, runS);
    const cold = await runMode(dir, 'cold', loadS, runS);
    let overlap = 0;
    let maxRel = 0;
    for (const [id, w] of warm.jpt) {
      const c = cold.jpt.get(id);
      if (!c) continue;
      if (w.low <= c.high && c.low <= w.high) overlap++;
      maxRel = Math.max(maxRel, Math.abs(w.mean - c.mean) / c.mean);
    }
    const covers = (r: ModeResult): number => [...r.jpt.values()].filter((x) => x.low <= x.truth && x.truth <= x.high).length;
    return [
      { name: `fake engine: load L = ${loadS} s, run = ${runS} s; engine loads, warm + split-plot`, value: warm.loads, unit: `(planned ${warm.plannedLoads}; 15 whole plots)`, target: '≤ 15' },
      { name: '  engine loads, reload every run (flat shuffle)', value: cold.loads, unit: `(planned ${cold.plannedLoads})`, target: '60' },
      { name: '  campaign wall time, warm + split-plot', value: warm.wallS, unit: 's' },
      { name: '  campaign wall time, reload every run', value: cold.wallS, unit: 's' },
      { name: '  wall time, reload every run / warm + split-plot', value: cold.wallS / warm.wallS, unit: '×', target: '≥ 2×' },
      { name: '  J/token: experiments whose 95 % CIs (warm, reload) overlap', value: overlap, unit: `of ${warm.jpt.size}`, target: 'all' },
      { name: '  J/token: largest difference of means, warm vs reload', value: maxRel * 100, unit: '%' },
      { name: '  J/token: the fake model\'s true value inside the 95 % CI, warm', value: covers(warm), unit: `of ${warm.jpt.size}`, target: '≈ 95 %' },
      { name: '  J/token: the fake model\'s true value inside the 95 % CI, reload', value: covers(cold), unit: `of ${cold.jpt.size}`, target: '≈ 95 %' },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
