/**
 * Carbon: emissions per run, per request and per output token beside energy, computed late from the
 * campaign's carbon setting (a region of the shipped table, or a given intensity), through the real
 * CLI; CodeCarbon's emissions.csv; and the campaign file's carbon: block validated at its line.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { gridIntensityTable } from '../../src/config/grid-intensity.js';
import { emissionMetrics, resolveIntensity } from '../../src/results/carbon.js';
import { parseCsv } from '../../src/results/compat/import.js';
import { lem, tempDir } from '../helpers/cli.js';
import { storeCampaign } from '../helpers/stored-campaign.js';

// CodeCarbon's EmissionsData fields, in order (mlco2/codecarbon, codecarbon/output_methods/emissions_data.py).
const CODECARBON_HEADER =
  'timestamp,project_name,run_id,experiment_id,duration,emissions,emissions_rate,cpu_power,gpu_power,ram_power,cpu_energy,gpu_energy,ram_energy,energy_consumed,water_consumed,country_name,country_iso_code,region,cloud_provider,cloud_region,os,python_version,codecarbon_version,cpu_count,cpu_model,gpu_count,gpu_model,longitude,latitude,ram_total_size,tracking_mode,cpu_utilization_percent,gpu_utilization_percent,ram_utilization_percent,ram_used_gb,on_cloud,pue,wue';

describe('carbon arithmetic and the shipped table', () => {
  it('the table is dated and sourced, and a region resolves to its row', () => {
    const t = gridIntensityTable();
    expect(t.source.url).toMatch(/^https:\/\/github\.com\/mlco2\/codecarbon\/blob\/[0-9a-f]{40}\//);
    expect(t.source.data_year).toBe(2023);
    const fra = resolveIntensity({ region: 'FRA' });
    expect(fra?.g_per_kwh).toBe(t.regions.FRA?.intensity_g_per_kwh);
    expect(fra?.source).toContain('France');
  });

  it('emissions = kWh × g/kWh, per request and per output token; null without energy', () => {
    // 7.2e6 J = 2 kWh at 300 g/kWh = 600 g; 100 requests, 6000 tokens
    expect(emissionMetrics({ energy_total_j: 7.2e6, requests: 100, output_tokens: 6000 }, 300)).toEqual({ emissions_g: 600, emissions_g_per_request: 6, emissions_g_per_output_token: 0.1 });
    expect(emissionMetrics({ energy_total_j: null, requests: 100 }, 300)).toEqual({ emissions_g: null, emissions_g_per_request: null, emissions_g_per_output_token: null });
  });
});

describe('carbon through the CLI', () => {
  let state = '';
  const runsOf = (e: number[]) => e.map((j, i) => ({ energy_total_j: j, energy_gpu_j: j * 0.9, energy_cpu_j: j * 0.1, window_s: 100 + i, requests: 50, output_tokens: 5000 }));
  beforeAll(() => {
    state = tempDir('lem-carbon-');
    storeCampaign(state, 'green', [{ id: 'aaaaaaaaaaaa', name: 'a', runs: runsOf([3.6e6, 7.2e6]) }], { carbon: { region: 'SWE' } });
    storeCampaign(state, 'plain', [{ id: 'bbbbbbbbbbbb', name: 'b', runs: runsOf([3.6e6, 7.2e6]) }]);
  });

  it('results show carries emissions beside energy, from the campaign region', () => {
    const r = lem(['--state', state, 'results', 'show', 'green', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as { carbon: { intensity_g_per_kwh: number; region: string }; experiments: { metrics: Record<string, { description: { mean: number } | null }> }[] };
    const swe = gridIntensityTable().regions.SWE?.intensity_g_per_kwh as number;
    expect(j.carbon).toMatchObject({ intensity_g_per_kwh: swe, region: 'SWE' });
    // runs of 1 and 2 kWh → mean 1.5 kWh
    expect(j.experiments[0]?.metrics.emissions_g?.description?.mean).toBeCloseTo(1.5 * swe, 9);
    expect(j.experiments[0]?.metrics.emissions_g_per_output_token?.description?.mean).toBeCloseTo((1.5 * swe) / 5000, 12);
    const text = lem(['--state', state, 'results', 'show', 'green']);
    expect(text.stdout).toContain('emissions_g_per_request');
    expect(text.stdout).toContain('SWE (Sweden, 2023)');
  });

  it('a campaign without carbon gets no emissions unless asked on the command line', () => {
    const none = JSON.parse(lem(['--state', state, 'results', 'show', 'plain', '--json']).stdout) as { carbon: unknown; experiments: { metrics: Record<string, unknown> }[] };
    expect(none.carbon).toBeNull();
    expect(none.experiments[0]?.metrics.emissions_g).toBeUndefined();
    const csv = parseCsv(lem(['--state', state, 'results', 'export', 'plain', '--format', 'csv', '--carbon-intensity', '100']).stdout).filter((r) => r.length > 1);
    const col = (csv[0] as string[]).indexOf('emissions_g');
    expect(csv.slice(1).map((r) => Number(r[col]))).toEqual([100, 200]);
    const bad = lem(['--state', state, 'results', 'export', 'plain', '--format', 'codecarbon']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('carbon');
  });

  it("exports CodeCarbon's emissions.csv with its columns and units (kg, kWh, W)", () => {
    const out = join(state, 'emissions.csv');
    const r = lem(['--state', state, 'results', 'export', 'green', '--format', 'codecarbon', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    const rows = parseCsv(readFileSync(out, 'utf8')).filter((x) => x.length > 1);
    expect((rows[0] as string[]).join(',')).toBe(CODECARBON_HEADER);
    const h = rows[0] as string[];
    const get = (row: string[], c: string) => row[h.indexOf(c)];
    const swe = gridIntensityTable().regions.SWE?.intensity_g_per_kwh as number;
    const second = rows[2] as string[];
    expect(Number(get(second, 'energy_consumed'))).toBeCloseTo(2, 12);
    expect(Number(get(second, 'emissions'))).toBeCloseTo((2 * swe) / 1000, 12);
    expect(Number(get(second, 'gpu_power'))).toBeCloseTo((7.2e6 * 0.9) / 101, 9);
    expect(get(second, 'country_iso_code')).toBe('SWE');
    expect(get(second, 'project_name')).toBe('green');
    expect(get(second, 'water_consumed')).toBe('');
  });

  it('a campaign file with an unknown region is rejected at its line; a known one validates', () => {
    const dir = tempDir('lem-carbon-cfg-');
    const file = join(dir, 'c.yaml');
    writeFileSync(file, `campaign_name: c\nconfigs:\n  - backend: calibration\ncarbon:\n  region: XYZ\n`);
    const bad = lem(['config', 'validate', file]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/c\.yaml:5:\d+/);
    expect(bad.stderr).toContain('XYZ');
    writeFileSync(file, `campaign_name: c\nconfigs:\n  - backend: calibration\ncarbon:\n  region: FRA\n`);
    expect(lem(['config', 'validate', file]).code).toBe(0);
  });
});
