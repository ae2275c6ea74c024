/** The PyTorch harness overhead on CPU (images/worker/bench_harness.py), run with a torch-capable python. */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { workerDir } from '../src/util/paths.js';
import type { Figure } from './figure.js';

export function benchWorker(): Figure[] | string {
  const python = process.env['LEM_BENCH_PYTHON'] ?? '/usr/bin/python3';
  const probe = spawnSync(python, ['-c', 'import torch'], { encoding: 'utf8' });
  if (probe.status !== 0) return `skipped: ${python} has no torch (apt-get install python3-torch, or set LEM_BENCH_PYTHON)`;
  const r = spawnSync(python, [join(workerDir(), 'bench_harness.py')], { encoding: 'utf8', env: { ...process.env, PYTHONPATH: workerDir() }, timeout: 300_000 });
  if (r.status !== 0) return `failed: ${r.stderr.trim().split('\n').slice(-1)[0] ?? 'no output'}`;
  const o = JSON.parse(r.stdout.trim().split('\n').slice(-1)[0] ?? '{}') as Record<string, number | null>;
  return [
    { name: 'pytorch harness: lem / bare generate() throughput', value: (o['lem_vs_bare'] ?? NaN) * 100, unit: '%', target: '≥ 99 %' },
    { name: '  time lem adds per pass', value: (o['lem_overhead_per_pass_s'] ?? NaN) * 1000, unit: 'ms' },
    { name: '  A/B throughput ratio, median of interleaved rounds (noise floor)', value: (o['lem_vs_bare_ab_median'] ?? NaN) * 100, unit: '%' },
    { name: 'power sampler cost (CPU share at 100 ms)', value: (o['sampler_cost'] ?? NaN) * 100, unit: '%', target: '≤ 0.5 %' },
  ];
}
