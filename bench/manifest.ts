/** Planning and persisting a 100 000-run grid, and reading its status back. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCampaign } from '../src/config/load.js';
import { planRuns } from '../src/campaign/planner.js';
import { Manifest } from '../src/manifest/manifest.js';
import { systemClock } from '../src/util/clock.js';
import { packageRoot } from '../src/util/paths.js';
import type { Figure } from './figure.js';

const median = (xs: number[]): number => {
  const s = xs.slice().sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
};

export async function benchManifest(): Promise<Figure[]> {
  const dir = mkdtempSync(join(tmpdir(), 'lem-bench-'));
  try {
    const sizes = Array.from({ length: 1000 }, (_, i) => 8 + i);
    const file = join(dir, 'grid.yaml');
    writeFileSync(
      file,
      `campaign_name: bench\nbase_config: {backend: calibration}\nvary:\n  calibration.matrix_size: [${sizes.join(', ')}]\ncycles: 100\nstructure: shuffled\nthermal_gap: 0\n`,
    );
    const db = join(dir, 'lem.db');
    const t0 = performance.now();
    const c = loadCampaign(file);
    const t1 = performance.now();
    const runs = planRuns({ experimentIds: c.experiments.map((e) => e.id), cycles: c.settings.cycles, structure: c.settings.structure, seed: c.settings.seed });
    const t2 = performance.now();
    const m = Manifest.open(db, systemClock);
    m.createCampaign({ id: 'bench-1', name: c.name, sourcePath: file, settings: c.settings, notes: c.notes, experiments: c.experiments, runs });
    const t3 = performance.now();
    if (runs.length !== 100_000) throw new Error(`expected 100000 runs, planned ${runs.length}`);

    const inproc: number[] = [];
    for (let i = 0; i < 20; i++) {
      const s = performance.now();
      m.findCampaign('bench-1');
      m.counts('bench-1');
      inproc.push(performance.now() - s);
    }
    m.close();
    const cli: number[] = [];
    for (let i = 0; i < 5; i++) {
      const s = performance.now();
      const r = spawnSync(process.execPath, [join(packageRoot(), 'bin', 'lem.js'), '--db', db, 'campaign', 'status', 'bench-1', '--json'], { encoding: 'utf8' });
      cli.push(performance.now() - s);
      if (r.status !== 0) throw new Error(`lem campaign status failed: ${r.stderr}`);
    }
    const bare: number[] = [];
    for (let i = 0; i < 5; i++) {
      const s = performance.now();
      spawnSync(process.execPath, ['-e', '0']);
      bare.push(performance.now() - s);
    }
    return [
      { name: 'grid: expand 1000 configs (load + validate + hash)', value: t1 - t0, unit: 'ms' },
      { name: 'grid: plan 100 000 runs', value: t2 - t1, unit: 'ms' },
      { name: 'grid: persist 100 000 runs (one transaction)', value: t3 - t2, unit: 'ms' },
      { name: 'grid: plan and persist 100 000 runs, total', value: t3 - t0, unit: 'ms', target: '≤ 2000 ms' },
      { name: 'status on 100 000 runs: query (median of 20)', value: median(inproc), unit: 'ms', target: '≤ 100 ms' },
      { name: 'status on 100 000 runs: `lem campaign status` process (median of 5)', value: median(cli), unit: 'ms' },
      { name: '  of which bare node start-up (median of 5)', value: median(bare), unit: 'ms' },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
