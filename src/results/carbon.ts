/**
 * Carbon, computed late from energy (raw results are never modified; nothing here is written into them).
 *
 * Intensity I (gCO2eq/kWh): the campaign's `carbon: {intensity_g_per_kwh}`, or its `carbon: {region}`
 * looked up in the shipped table (data/grid-intensity.json, with its source and date), or a CLI override.
 * Per run, from the measured total energy (energy_total_j: the sum of the domains measured, so GPU
 * only when only the GPU was measured; the table's intensity is an annual average, not marginal):
 *   emissions_g                    = energy_total_j / 3.6e6 × I
 *   emissions_g_per_request        = emissions_g / requests
 *   emissions_g_per_output_token   = emissions_g / output_tokens
 * A run without measured energy gets null emissions (never an estimate).
 * `withEmissions` returns copies of the runs with these metrics added, so every late view
 * (results show, csv/json/unified exports, compare) carries them beside energy.
 */
import { gridIntensityTable } from '../config/grid-intensity.js';
import type { Carbon } from '../config/campaign.js';
import type { RunRecord } from './aggregate.js';
import { LemError } from '../util/errors.js';

export const EMISSION_METRICS = ['emissions_g', 'emissions_g_per_request', 'emissions_g_per_output_token'] as const;

export interface Intensity {
  g_per_kwh: number;
  /** e.g. "campaign carbon.intensity_g_per_kwh", or "FRA (France, 2023) from <source>". */
  source: string;
  region: string | null;
  region_name: string | null;
}

const J_PER_KWH = 3_600_000;

export function resolveIntensity(carbon: Carbon | undefined | null): Intensity | null {
  if (!carbon) return null;
  if (carbon.intensity_g_per_kwh !== undefined) return { g_per_kwh: carbon.intensity_g_per_kwh, source: 'given: carbon.intensity_g_per_kwh', region: null, region_name: null };
  if (carbon.region === undefined) return null;
  const t = gridIntensityTable();
  const row = t.regions[carbon.region];
  if (!row) throw new LemError(`no grid intensity for region '${carbon.region}' in the shipped table; known: ${Object.keys(t.regions).sort().join(', ')}.`);
  return { g_per_kwh: row.intensity_g_per_kwh, source: `${carbon.region} (${row.name}, ${row.year}) from ${t.source.name}, ${t.source.url}`, region: carbon.region, region_name: row.name };
}

function finite(v: number | null | undefined): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

/** The emission metrics of one run's metrics. */
export function emissionMetrics(metrics: Record<string, number | null>, gPerKwh: number): Record<(typeof EMISSION_METRICS)[number], number | null> {
  const e = finite(metrics.energy_total_j);
  const g = e === null ? null : (e / J_PER_KWH) * gPerKwh;
  const per = (d: number | null): number | null => (g === null || d === null || d <= 0 ? null : g / d);
  return { emissions_g: g, emissions_g_per_request: per(finite(metrics.requests)), emissions_g_per_output_token: per(finite(metrics.output_tokens)) };
}

/** Copies of the runs with the emission metrics added (succeeded runs only; others unchanged). */
export function withEmissions(runs: readonly RunRecord[], intensity: Intensity | null): RunRecord[] {
  if (!intensity) return [...runs];
  return runs.map((r) => (r.status === 'succeeded' ? { ...r, metrics: { ...r.metrics, ...emissionMetrics(r.metrics, intensity.g_per_kwh) } } : r));
}
