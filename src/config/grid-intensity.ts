/**
 * The shipped, dated table of grid carbon intensities (data/grid-intensity.json): annual average
 * gCO2eq/kWh per country (ISO 3166-1 alpha-3), copied from CodeCarbon's global_energy_mix.json
 * (Our World in Data, 2023 values); the file names its source URL, commit and dates. Read once, lazily.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';

const GridTable = z.object({
  source: z.object({ name: z.string(), url: z.string(), commit: z.string(), commit_date: z.string(), data_year: z.number().int(), copied: z.string() }),
  unit: z.literal('gCO2eq/kWh'),
  region_codes: z.string(),
  note: z.string(),
  regions: z.record(z.string(), z.object({ name: z.string(), intensity_g_per_kwh: z.number().positive(), year: z.number().int() })),
});
export type GridTable = z.infer<typeof GridTable>;

let cached: GridTable | null = null;

/** Finds data/grid-intensity.json above this module (works from src/ and from dist/src/). */
function tablePath(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const p = join(dir, 'data', 'grid-intensity.json');
    if (existsSync(p)) return p;
    dir = dirname(dir);
  }
  throw new Error('data/grid-intensity.json is missing from the lem installation');
}

export function gridIntensityTable(): GridTable {
  cached ??= GridTable.parse(JSON.parse(readFileSync(tablePath(), 'utf8')) as unknown);
  return cached;
}

export function knownRegions(): string[] {
  return Object.keys(gridIntensityTable().regions).sort();
}
