/**
 * `lem validate` and `results compare --fail-on` through the real CLI, on campaigns stored for the
 * purpose with chosen values: all within tolerance (exit 0), one metric outside (exit 1), one metric
 * whose interval straddles its bound (exit 3), and the tolerance flags moving a verdict.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { lem, tempDir } from '../helpers/cli.js';
import { storeCampaign } from '../helpers/stored-campaign.js';

const jitter = [1.0, 1.003, 0.997, 1.002, 0.998, 1.001];
const series = (base: number, factors: readonly number[] = jitter) => factors.map((f) => base * f);
const runs = (energy: readonly number[], tput: readonly number[]) => energy.map((e, i) => ({ energy_gpu_j: e, output_tokens_per_s: tput[i] ?? null }));

let state = '';
beforeAll(() => {
  state = tempDir('lem-validate-');
  storeCampaign(state, 'base', [{ id: 'aaaaaaaaaaaa', name: 'a', runs: runs(series(100), series(50)) }]);
  // Same numbers up to 0.3 % noise.
  storeCampaign(state, 'same', [{ id: 'bbbbbbbbbbbb', name: 'b', runs: runs(series(100.5), series(49.8)) }]);
  // Energy 20 % higher, tightly.
  storeCampaign(state, 'hotter', [{ id: 'cccccccccccc', name: 'c', runs: runs(series(120), series(50)) }]);
  // Energy around +4.5 % with a wide spread: the interval straddles +5 %.
  storeCampaign(state, 'noisy', [{ id: 'dddddddddddd', name: 'd', runs: runs([96, 113, 99, 111, 100, 108], series(50)) }]);
});

interface ValidateJson {
  outcome: string;
  exit_code: number;
  counts: { within: number; outside: number; inconclusive: number };
  metrics: { metric: string; status: string; ratio: number; ratio_ci: { low: number; high: number } | null; tolerance: number }[];
}
const run = (args: string[]) => lem(['--state', state, ...args]);
const parse = (stdout: string) => JSON.parse(stdout) as ValidateJson;

describe('lem validate', () => {
  it('exits 0 when every metric is within tolerance, and prints the ratio, its interval and a verdict', () => {
    const r = run(['validate', 'base', 'same']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/energy_gpu_j .* within/);
    expect(r.stdout).toMatch(/output_tokens_per_s .* within/);
    expect(r.stdout).toContain('outcome: WITHIN');
    const j = run(['validate', 'base', 'same', '--json']);
    expect(j.code).toBe(0);
    const v = parse(j.stdout);
    expect(v.outcome).toBe('within');
    const e = v.metrics.find((m) => m.metric === 'energy_gpu_j');
    expect(e?.ratio).toBeCloseTo(1.005, 6);
    expect(e?.ratio_ci?.low).toBeGreaterThan(0.95);
    expect(e?.ratio_ci?.high).toBeLessThan(1.05);
    expect(e?.tolerance).toBe(0.05);
  });

  it('exits 1 when a metric is outside its tolerance, and 0 once the tolerance covers it', () => {
    const r = run(['validate', 'base', 'hotter', '--json']);
    expect(r.code, r.stderr).toBe(1);
    const v = parse(r.stdout);
    expect(v.outcome).toBe('outside');
    expect(v.metrics.find((m) => m.metric === 'energy_gpu_j')?.status).toBe('outside');
    expect(v.metrics.find((m) => m.metric === 'output_tokens_per_s')?.status).toBe('within');
    const wide = run(['validate', 'base', 'hotter', '--energy-tolerance', '30']);
    expect(wide.code, wide.stdout).toBe(0);
  });

  it('exits 3 when an interval straddles a bound', () => {
    const r = run(['validate', 'base', 'noisy', '--json']);
    expect(r.code, r.stderr).toBe(3);
    const v = parse(r.stdout);
    expect(v.outcome).toBe('inconclusive');
    const e = v.metrics.find((m) => m.metric === 'energy_gpu_j');
    expect(e?.status).toBe('inconclusive');
    expect(e?.ratio_ci?.low).toBeLessThan(1.05);
    expect(e?.ratio_ci?.high).toBeGreaterThan(1.05);
  });

  it('accepts CAMPAIGN/EXPERIMENT sides and rejects a bad tolerance with exit 2', () => {
    expect(run(['validate', 'base/a', 'same/b']).code).toBe(0);
    const bad = run(['validate', 'base', 'same', '--latency-tolerance', 'ten']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--latency-tolerance');
  });
});

describe('lem results compare --fail-on', () => {
  it('keeps exit 0 without --fail-on, and applies the chosen policy with it', () => {
    expect(run(['results', 'compare', 'base', 'noisy']).code).toBe(0);
    expect(run(['results', 'compare', 'base', 'noisy', '--fail-on', 'outside']).code).toBe(0);
    expect(run(['results', 'compare', 'base', 'noisy', '--fail-on', 'inconclusive']).code).toBe(3);
    expect(run(['results', 'compare', 'base', 'hotter', '--fail-on', 'outside']).code).toBe(1);
    expect(run(['results', 'compare', 'base', 'hotter', '--fail-on', 'outside', '--energy-tolerance', '25']).code).toBe(0);
  });
});
