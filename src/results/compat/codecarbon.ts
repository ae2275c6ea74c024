/**
 * CodeCarbon `emissions.csv` view of lem runs, for users who feed CodeCarbon dashboards.
 *
 * Columns: exactly CodeCarbon's EmissionsData fields, in its order (codecarbon/output_methods/
 * emissions_data.py, mlco2/codecarbon), one row per succeeded run, in CodeCarbon's units:
 *   timestamp (run end, ISO-8601), project_name (campaign), run_id, experiment_id, duration (s, the
 *   measured window), emissions (kg CO2eq), emissions_rate (kg/s), cpu_power/gpu_power/ram_power (W,
 *   mean over the window), cpu_energy/gpu_energy/ram_energy/energy_consumed (kWh), water_consumed,
 *   country_name, country_iso_code, region, cloud_provider, cloud_region, os, python_version,
 *   codecarbon_version, cpu_count, cpu_model, gpu_count, gpu_model, longitude, latitude,
 *   ram_total_size, tracking_mode, cpu_utilization_percent, gpu_utilization_percent,
 *   ram_utilization_percent, ram_used_gb, on_cloud, pue, wue.
 * lem fills what it measured; a value lem did not measure is an EMPTY cell (CodeCarbon would write 0
 * or an estimate; lem never estimates): water, utilisation, location coordinates, cloud fields,
 * codecarbon_version. tracking_mode is "machine" (device counters, not per process); on_cloud "N",
 * pue 1 and wue 0 are CodeCarbon's defaults. emissions use the campaign's carbon intensity (carbon.ts).
 */
import type { RunRecord } from '../aggregate.js';
import { emissionMetrics, type Intensity } from '../carbon.js';

export const CODECARBON_COLUMNS = [
  'timestamp', 'project_name', 'run_id', 'experiment_id', 'duration', 'emissions', 'emissions_rate',
  'cpu_power', 'gpu_power', 'ram_power', 'cpu_energy', 'gpu_energy', 'ram_energy', 'energy_consumed',
  'water_consumed', 'country_name', 'country_iso_code', 'region', 'cloud_provider', 'cloud_region', 'os',
  'python_version', 'codecarbon_version', 'cpu_count', 'cpu_model', 'gpu_count', 'gpu_model', 'longitude',
  'latitude', 'ram_total_size', 'tracking_mode', 'cpu_utilization_percent', 'gpu_utilization_percent',
  'ram_utilization_percent', 'ram_used_gb', 'on_cloud', 'pue', 'wue',
] as const;
export type CodecarbonColumn = (typeof CODECARBON_COLUMNS)[number];

const J_PER_KWH = 3_600_000;

function finite(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

function obj(v: unknown): Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

function cell(v: string | number | null): string {
  if (v === null) return '';
  const s = String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** One emissions.csv row (column → value; null = empty cell). */
export function codecarbonRow(run: RunRecord, project: string, intensity: Intensity): Record<CodecarbonColumn, string | number | null> {
  const m = run.metrics;
  const result = obj(run.result);
  const env = obj(result.environment);
  const duration = finite(m.window_s) ?? finite(m.duration_s);
  const kwh = (name: string): number | null => {
    const j = finite(m[name]);
    return j === null ? null : j / J_PER_KWH;
  };
  const watts = (name: string): number | null => {
    const j = finite(m[name]);
    return j === null || duration === null || duration <= 0 ? null : j / duration;
  };
  const grams = emissionMetrics(m, intensity.g_per_kwh).emissions_g;
  const kg = grams === null ? null : grams / 1000;
  const gpus = Array.isArray(obj(result.energy).per_gpu) ? (obj(result.energy).per_gpu as unknown[]) : [];
  const gpuNames = [...new Set(gpus.map((g) => obj(g).name).filter((n): n is string => typeof n === 'string'))];
  return {
    timestamp: typeof result.ended_at === 'string' ? result.ended_at : null,
    project_name: project,
    run_id: run.runId,
    experiment_id: run.experimentId,
    duration,
    emissions: kg,
    emissions_rate: kg === null || duration === null || duration <= 0 ? null : kg / duration,
    cpu_power: watts('energy_cpu_j'),
    gpu_power: watts('energy_gpu_j'),
    ram_power: watts('energy_dram_j'),
    cpu_energy: kwh('energy_cpu_j'),
    gpu_energy: kwh('energy_gpu_j'),
    ram_energy: kwh('energy_dram_j'),
    energy_consumed: kwh('energy_total_j'),
    water_consumed: null,
    country_name: intensity.region_name,
    country_iso_code: intensity.region,
    region: null,
    cloud_provider: null,
    cloud_region: null,
    os: typeof env.platform === 'string' ? env.platform : null,
    python_version: typeof env.python_version === 'string' ? env.python_version : null,
    codecarbon_version: null,
    cpu_count: finite(env.cpu_count),
    cpu_model: typeof env.cpu_model === 'string' ? env.cpu_model : null,
    gpu_count: gpus.length > 0 ? gpus.length : null,
    gpu_model: gpuNames.length > 0 ? gpuNames.join(', ') : null,
    longitude: null,
    latitude: null,
    ram_total_size: null,
    tracking_mode: 'machine',
    cpu_utilization_percent: null,
    gpu_utilization_percent: null,
    ram_utilization_percent: null,
    ram_used_gb: null,
    on_cloud: 'N',
    pue: 1,
    wue: 0,
  };
}

/** emissions.csv text for the succeeded runs. */
export function toCodecarbonCsv(runs: readonly RunRecord[], project: string, intensity: Intensity): string {
  const lines = [CODECARBON_COLUMNS.join(',')];
  for (const r of runs) {
    if (r.status !== 'succeeded') continue;
    const row = codecarbonRow(r, project, intensity);
    lines.push(CODECARBON_COLUMNS.map((c) => cell(row[c])).join(','));
  }
  return `${lines.join('\n')}\n`;
}
