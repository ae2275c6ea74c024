/**
 * `npm run bench`: prints lem's performance figures, each beside its target. A benchmark
 * reports; it does not fail the build. `--json` also prints every figure as JSON.
 */
import { benchCampaignSim } from './campaign-sim.js';
import { benchDispatch } from './dispatch.js';
import { benchDocker } from './docker.js';
import type { Figure } from './figure.js';
import { benchManifest } from './manifest.js';
import { benchMemory } from './memory.js';
import { benchBootstrap, benchCoverage } from './stats.js';
import { benchWorker } from './worker.js';

function print(section: string, figures: Figure[] | string): Figure[] {
  console.log(`\n${section}`);
  if (typeof figures === 'string') {
    console.log(`  ${figures}`);
    return [];
  }
  const width = Math.max(...figures.map((f) => f.name.length));
  for (const f of figures) {
    const v = Number.isFinite(f.value) ? f.value.toFixed(Math.abs(f.value) < 10 ? 2 : 0) : 'n/a';
    console.log(`  ${f.name.padEnd(width)}  ${v.padStart(9)} ${f.unit}${f.target ? `   (target ${f.target})` : ''}`);
  }
  return figures;
}

async function main(): Promise<void> {
  const all: Figure[] = [];
  all.push(...print('manifest and planner', await benchManifest()));
  all.push(...print('orchestrator memory (100 000-run plan)', benchMemory()));
  all.push(...print('campaign wall time, simulated (FAKE engine; warm engines + split-plot vs reload every run)', await benchCampaignSim()));
  all.push(...print('docker runtime', await benchDocker()));
  all.push(...print('dispatch: 0.1 s calibration run through lem (docker runtime) vs bare `docker exec` of the worker', benchDispatch()));
  all.push(...print('worker (CPU, tiny model)', benchWorker()));
  all.push(...print('statistics', benchBootstrap()));
  console.log('\ninterval coverage (seeded simulation; README "Intervals")');
  for (const line of benchCoverage()) console.log(`  ${line}`);
  if (process.argv.includes('--json')) console.log(JSON.stringify(all));
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
