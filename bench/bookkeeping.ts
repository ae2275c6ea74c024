/**
 * What the orchestrator itself spends per run around a dispatch, on any runtime: writing the
 * run's config, the manifest transitions (running → handle → succeeded, each a transaction with
 * its event), and ingesting a realistic result file (read, parse, validate against the zod schema).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ExperimentConfig } from '../src/config/experiment.js';
import { Manifest, runId } from '../src/manifest/manifest.js';
import { ingestResultFile } from '../src/contract/ingest.js';
import { systemClock } from '../src/util/clock.js';
import { packageRoot } from '../src/util/paths.js';

export function bookkeepingMedianMs(iterations = 200): number {
  const dir = mkdtempSync(join(tmpdir(), 'lem-bench-book-'));
  try {
    const m = Manifest.open(join(dir, 'lem.db'), systemClock);
    const config = ExperimentConfig.parse({ backend: 'pytorch', model: { id: 'x' } });
    const template = JSON.parse(readFileSync(join(packageRoot(), 'test', 'results-schema', 'fixtures', 'pytorch-v3-fake-gpu.json'), 'utf8')) as Record<string, unknown>;
    const runs = Array.from({ length: iterations }, (_, i) => ({ position: i, experimentId: 'e', cycle: i + 1 }));
    m.createCampaign({ id: 'b', name: 'b', sourcePath: 'x', settings: { cycles: iterations, structure: 'grouped', seed: 0, thermal_gap: 0, runtime: 'local', force_cold_start: false, retries: 0, keep_services: false }, notes: [], experiments: [{ id: 'e', name: 'e', backend: 'pytorch', config }], runs });
    const samples: number[] = [];
    for (const r of runs) {
      const out = join(dir, 'runs', `c${r.cycle}`);
      mkdirSync(out, { recursive: true });
      const id = runId('b', r.position);
      // The worker's part, not timed: a result file for this run.
      writeFileSync(join(out, 'result.json'), JSON.stringify({ ...template, run_id: id, experiment_id: 'e', cycle: r.cycle, attempt: 1 }));
      const t = performance.now();
      writeFileSync(join(out, 'config.json'), JSON.stringify({ run: { run_id: id }, experiment: config }));
      m.markRunning('b', r.position, 1);
      m.setHandle('b', r.position, 1, 'h');
      const ing = ingestResultFile(join(out, 'result.json'), { runId: id, experimentId: 'e', cycle: r.cycle, attempt: 1 });
      if (!ing.ok) throw new Error(ing.reason);
      m.markSucceeded('b', r.position, 1, { resultPath: join(out, 'result.json'), metrics: ing.result.metrics, flags: ing.flags, exitCode: 0 });
      samples.push(performance.now() - t);
    }
    m.close();
    samples.sort((a, b) => a - b);
    return samples[Math.floor(samples.length / 2)] as number;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
