/**
 * `npm run bench`: prints lem's performance figures. Targets (from the issues) are printed beside
 * each figure; a benchmark reports, it does not fail the build.
 */
import { benchManifest } from './manifest.js';

interface Figure {
  name: string;
  value: number;
  unit: string;
  target?: string;
}

async function main(): Promise<void> {
  const figures: Figure[] = [];
  figures.push(...(await benchManifest()));
  const width = Math.max(...figures.map((f) => f.name.length));
  for (const f of figures) {
    console.log(`${f.name.padEnd(width)}  ${f.value.toFixed(f.value < 10 ? 2 : 0).padStart(10)} ${f.unit}${f.target ? `   (target ${f.target})` : ''}`);
  }
  if (process.argv.includes('--json')) console.log(JSON.stringify(figures));
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
