/**
 * A FAKE engine runtime for the campaign-time simulation (bench only; no GPU, no model): loading an
 * engine takes loadS seconds, a run takes runS seconds, and each run writes a result whose J/token
 * comes from a fixed energy model (per-model cost × batch amortisation × seeded 2 % noise). With
 * `warm`, the one loaded engine is kept until a run needs another (what warm engines do);
 * without, every run loads its model afresh (what a new process per run does).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { engineKey } from '../src/config/engine-key.js';
import { ExperimentConfig } from '../src/config/experiment.js';
import type { DispatchOutcome, Runtime, RunSpec } from '../src/runtime/types.js';
import { createRng } from '../src/util/random.js';

export interface FakeEngineOptions {
  loadS: number;
  runS: number;
  warm: boolean;
  /** Seeds the noise of the energy model. */
  seed: string;
}

export interface FakeEngineRuntime extends Runtime {
  loads: number;
}

const sleep = (s: number): Promise<void> => new Promise((r) => setTimeout(r, s * 1000));

/** The fake energy model: J per output token of a model at a batch size, before noise. */
export function fakeJoulesPerToken(modelId: string, batch: number): number {
  const perModel = 0.05 + (modelId.length % 7) * 0.01;
  return perModel * (1 + 2 / batch);
}

export function fakeEngineRuntime(o: FakeEngineOptions): FakeEngineRuntime {
  const rng = createRng(o.seed);
  const gauss = (): number => Math.sqrt(-2 * Math.log(1 - rng.next())) * Math.cos(2 * Math.PI * rng.next());
  let loaded: string | null = null;
  const rt: FakeEngineRuntime = {
    name: 'local',
    loads: 0,
    async prepare() {},
    async dispatch(spec: RunSpec, _signal, onStarted): Promise<DispatchOutcome> {
      onStarted(`fake-engine:${spec.runId}`);
      const input = JSON.parse(readFileSync(spec.configPath, 'utf8')) as { experiment: unknown };
      const cfg = ExperimentConfig.parse(input.experiment);
      if (cfg.backend === 'calibration') throw new Error('the fake engine serves LLM backends');
      const key = engineKey(cfg);
      if (!o.warm || loaded !== key) {
        await sleep(o.loadS);
        rt.loads++;
        loaded = key;
      }
      await sleep(o.runS);
      const tokens = cfg.max_output_tokens * cfg.batching.batch_size;
      const jpt = fakeJoulesPerToken(cfg.model.id, cfg.batching.batch_size) * (1 + 0.02 * gauss());
      writeFileSync(spec.logPath, `fake engine: key ${key}\n`);
      const result = {
        schema_version: 1,
        run_id: spec.runId,
        experiment_id: spec.experimentId,
        cycle: spec.cycle,
        attempt: spec.attempt,
        backend: spec.backend,
        started_at: new Date().toISOString(),
        ended_at: new Date().toISOString(),
        metrics: { j_per_output_token: jpt, energy_gpu_adjusted_j: jpt * tokens, output_tokens_per_s: tokens / o.runS },
        unmeasured: {},
        energy: {
          gpu: { joules: jpt * tokens, source: 'fake-engine', reason: null },
          cpu: { joules: null, source: null, reason: 'fake engine' },
          dram: { joules: null, source: null, reason: 'fake engine' },
        },
        environment: {},
        notes: ['FAKE engine (bench simulation)'],
      };
      writeFileSync(join(spec.outDir, 'result.json'), JSON.stringify(result));
      return { exitCode: 0, timedOut: false, failureReason: null };
    },
    async reap() {},
    async findWorkers() {
      return [];
    },
    async stopWorkers() {
      return [];
    },
    async shutdown() {},
  };
  return rt;
}
