/**
 * bench/gpu/acceptance.sh --dry-run: the GPU acceptance script end to end on CPU (tiny sizes, no
 * NVML): one table, one JSON file, every figure a number or null with its reason. With torch in the
 * worker's Python, the harness, warm-reuse and lem-campaign sections measure for real on the tiny
 * plain-torch fixture model; without it they are null with that reason.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, tempDir } from '../helpers/cli.js';

interface FigureDoc {
  value: number | null;
  unit: string;
  reason: string | null;
  ok: boolean | null;
}

const PYTHON = '/usr/bin/python3';
const hasTorch = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;

describe('GPU acceptance script, dry run (CPU, tiny sizes, no NVML)', () => {
  it('prints one table and writes one JSON file whose unmeasured figures carry reasons', () => {
    const out = tempDir('lem-gpu-acceptance-');
    const r = spawnSync('bash', [join(ROOT, 'bench', 'gpu', 'acceptance.sh'), '--dry-run', '--out', out], {
      encoding: 'utf8',
      env: { ...process.env, LEM_PYTHON: PYTHON },
      timeout: 90_000,
    });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^lem GPU acceptance \(DRY RUN/m);
    expect(r.stdout).toMatch(/^figure\s+value\s+unit\s+target\s+ok\s+reason/m);
    const doc = JSON.parse(readFileSync(join(out, 'gpu-acceptance.json'), 'utf8')) as { schema: string; dry_run: boolean; figures: Record<string, FigureDoc> };
    expect(doc.schema).toBe('lem.gpu_acceptance/1');
    expect(doc.dry_run).toBe(true);
    for (const [name, f] of Object.entries(doc.figures)) {
      if (f.value === null) expect(f.reason, name).toMatch(/\S/);
      else expect(Number.isFinite(f.value), name).toBe(true);
    }
    for (const name of ['idle_baseline_cv', 'energy_counter_vs_integrated_power', 'sampler_cpu_share']) {
      expect(doc.figures[name]?.value, name).toBeNull();
    }
    expect(doc.figures['energy_counter_vs_integrated_power']?.reason).toMatch(hasTorch ? /no NVML/ : /no torch/);
    if (hasTorch) {
      expect(doc.figures['harness_vs_bare']?.value).toBeGreaterThan(0);
      expect(doc.figures['campaign_runs_succeeded']?.value).toBe(1);
      expect(doc.figures['warm_reuse_loads_on']?.value).toBe(1);
      expect(doc.figures['warm_reuse_loads_off']?.value).toBe(2);
    } else {
      expect(doc.figures['harness_vs_bare']?.reason).toMatch(/no torch/);
    }
  }, 120_000);
});
