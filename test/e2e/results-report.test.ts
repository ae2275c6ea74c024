/**
 * End to end for the results layer: a calibration campaign, then CSV/JSON exports read back, and
 * the HTML report rendered in headless Chromium (Debian's package; required in CI).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseCsv } from '../../src/results/compat/import.js';
import { lem, ROOT, tempDir } from '../helpers/cli.js';

const CAMPAIGN = join(ROOT, 'test', 'fixtures', 'campaigns', 'tiny-calibration.yaml');
const CHROMIUM = '/usr/bin/chromium';

let state = '';
let id = '';
beforeAll(() => {
  state = tempDir();
  const r = lem(['--state', state, 'campaign', 'run', CAMPAIGN, '--json']);
  expect(r.code, r.stderr).toBe(0);
  id = (JSON.parse(r.stdout) as { campaign: string }).campaign;
});

describe('results on a real campaign', () => {
  it('exports one CSV row per run, with the metrics the manifest recorded', () => {
    const r = lem(['--state', state, 'results', 'export', id, '--format', 'csv']);
    expect(r.code, r.stderr).toBe(0);
    const [header, ...rows] = parseCsv(r.stdout).filter((row) => row.length > 1);
    expect(header?.slice(0, 3)).toEqual(['run_id', 'experiment_id', 'experiment_name']);
    expect(rows).toHaveLength(8);
    const col = (header as string[]).indexOf('flops_per_s');
    for (const row of rows) expect(Number(row[col])).toBeGreaterThan(0);
  });

  it('exports per-experiment aggregates as CSV and JSON that agree', () => {
    const csv = parseCsv(lem(['--state', state, 'results', 'export', id, '--format', 'csv', '--by', 'experiment']).stdout).filter((r) => r.length > 1);
    expect(csv).toHaveLength(3);
    const json = JSON.parse(lem(['--state', state, 'results', 'show', id, '--json']).stdout) as {
      experiments: Array<{ experiment_id: string; metrics: Record<string, { description: { mean: number; n: number } | null }> }>;
    };
    expect(json.experiments).toHaveLength(2);
    const header = csv[0] as string[];
    for (const e of json.experiments) {
      const row = csv.find((r) => r[0] === e.experiment_id) as string[];
      const mean = Number(row[header.indexOf('flops_per_s__mean')]);
      expect(mean).toBeCloseTo(e.metrics['flops_per_s']?.description?.mean ?? NaN, 3);
      expect(e.metrics['flops_per_s']?.description?.n).toBe(4);
      // The headline interval, named, and the few-cycles mark (4 cycles), in both.
      expect(row[header.indexOf('flops_per_s__ci_method')]).toBe('t');
      expect(row[header.indexOf('flops_per_s__few_cycles')]).toBe('true');
      const ci = (e.metrics['flops_per_s']?.description as unknown as { ci95: { low: number; high: number } }).ci95;
      expect(Number(row[header.indexOf('flops_per_s__ci95_low')])).toBeCloseTo(ci.low, 0);
      expect(Number(row[header.indexOf('flops_per_s__ci95_high')])).toBeCloseTo(ci.high, 0);
      expect(ci.low).toBeLessThan(mean);
      expect(ci.high).toBeGreaterThan(mean);
      // No bootstrap below 30 cycles unless asked for.
      expect(row[header.indexOf('flops_per_s__ci95_boot_low')]).toBe('');
    }
    const show = lem(['--state', state, 'results', 'show', id]);
    expect(show.stdout).toMatch(/95% CI \(Student t\)/);
    expect(show.stdout).not.toMatch(/BCa bootstrap\)/);
    expect(show.stdout).toMatch(/note: few cycles \(n = 4\)/);
    const asked = lem(['--state', state, 'results', 'show', id, '--method', 'bca']);
    expect(asked.stdout).toMatch(/95% CI \(Student t\)\s+95% CI \(BCa bootstrap\)/);
  });

  it('writes a self-contained HTML report that Chromium renders with its plots', () => {
    if (!existsSync(CHROMIUM)) {
      if (process.env['CI']) throw new Error(`${CHROMIUM} is missing: CI must install Debian's chromium package`);
      console.warn(`skipping the Chromium render: ${CHROMIUM} not installed (apt-get install -y chromium)`);
      return;
    }
    const out = join(state, 'report.html');
    const r = lem(['--state', state, 'report', id, '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    const html = readFileSync(out, 'utf8');
    expect(html).not.toMatch(/<(script|link|img)[^>]+(src|href)="https?:/i);
    const profile = mkdtempSync(join(tmpdir(), 'lem-chromium-'));
    const dom = execFileSync(
      CHROMIUM,
      ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', `--user-data-dir=${profile}`, '--dump-dom', `file://${out}`],
      { encoding: 'utf8', timeout: 90_000, maxBuffer: 64 * 1024 * 1024 },
    );
    expect(dom).toContain(id);
    expect((dom.match(/<svg class="plot /g) ?? []).length).toBeGreaterThanOrEqual(1);
    // The per-cycle strip plot has one mark per succeeded run.
    expect((dom.match(/<circle class="strip-point/g) ?? []).length).toBe(8);
    expect(dom).toContain('<table class="summary">');
  });
});
