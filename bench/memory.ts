/**
 * The orchestrator's resident memory on a 100 000-run campaign: a fresh node process loads the
 * grid (10 models × 100 batch sizes, 100 cycles), plans it in split-plot order and records plan and
 * design in a manifest, then reports its peak RSS (getrusage maxrss) — run as a child so the figure
 * is that process's own, not the bench's.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { planCampaign } from '../src/campaign/design.js';
import { loadCampaign } from '../src/config/load.js';
import { Manifest } from '../src/manifest/manifest.js';
import { systemClock } from '../src/util/clock.js';
import type { Figure } from './figure.js';

interface ChildReport {
  runs: number;
  engine_loads: number;
  baseline_rss_mb: number;
  peak_rss_mb: number;
  end_rss_mb: number;
}

function child(dir: string): ChildReport {
  const baseline = process.memoryUsage().rss;
  const file = join(dir, 'big.yaml');
  const models = Array.from({ length: 10 }, (_, i) => `org/model-${i}`);
  const batches = Array.from({ length: 100 }, (_, i) => i + 1);
  writeFileSync(
    file,
    `campaign_name: big\nbase_config:\n  backend: pytorch\n  model: {id: gpt2, no_weights: true, architecture: gpt2}\nvary:\n  model.id: [${models.join(', ')}]\n  batching.batch_size: [${batches.join(', ')}]\ncycles: 100\nthermal_gap: 0\n`,
  );
  const c = loadCampaign(file);
  const { runs, design } = planCampaign(c.experiments, c.settings);
  const m = Manifest.open(join(dir, 'lem.db'), systemClock);
  m.createCampaign({ id: 'big-1', name: c.name, sourcePath: file, settings: c.settings, notes: c.notes, experiments: c.experiments, runs, design });
  m.counts('big-1');
  m.close();
  const mb = (b: number): number => b / 1024 / 1024;
  return { runs: runs.length, engine_loads: design.engine_loads, baseline_rss_mb: mb(baseline), peak_rss_mb: process.resourceUsage().maxRSS / 1024, end_rss_mb: mb(process.memoryUsage().rss) };
}

export function benchMemory(): Figure[] | string {
  const dir = mkdtempSync(join(tmpdir(), 'lem-bench-mem-'));
  try {
    const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), dir], { encoding: 'utf8', timeout: 300_000 });
    if (r.status !== 0) return `failed: ${r.stderr.trim().split('\n').slice(-1)[0] ?? 'no output'}`;
    const o = JSON.parse(r.stdout) as ChildReport;
    return [
      { name: `orchestrator peak RSS: plan + record ${o.runs.toLocaleString('en-US')} runs (split-plot, ${o.engine_loads} loads)`, value: o.peak_rss_mb, unit: 'MB', target: '< 300 MB' },
      { name: '  RSS of the bare process before loading the campaign', value: o.baseline_rss_mb, unit: 'MB' },
      { name: '  RSS at the end', value: o.end_rss_mb, unit: 'MB' },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href && process.argv[2]) {
  process.stdout.write(JSON.stringify(child(process.argv[2])));
}
