import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { migrateV1, parseResult, resultJsonSchema } from '../../src/contract/result-parse.js';
import { BACKENDS, EnergyReading, ResultV1, ResultV3 } from '../../src/contract/result.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const fixture = (name: string): Record<string, any> => JSON.parse(readFileSync(join(here, 'fixtures', name), 'utf8'));
const clone = <T>(x: T): T => JSON.parse(JSON.stringify(x)) as T;

describe('result schema v1 -> v3 migration', () => {
  it('accepts a v1 file written by the first worker and migrates it to v3', () => {
    const v1 = fixture('calibration-v1.json');
    expect(ResultV1.safeParse(v1).success).toBe(true);
    const parsed = parseResult(v1);
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    const r = parsed.result;
    expect(r.schema_version).toBe(3);
    expect(r.migrated_from).toBe(1);
    expect(ResultV3.safeParse(r).success).toBe(true);
    // identity and metrics carried unchanged
    expect(r.run_id).toBe(v1.run_id);
    for (const [k, v] of Object.entries(v1.metrics)) expect(r.metrics[k]).toBe(v);
    for (const [k, v] of Object.entries(v1.unmeasured)) expect(r.unmeasured[k]).toBe(v);
    // new adjusted metrics are null with a reason
    expect(r.metrics.energy_gpu_adjusted_j).toBeNull();
    expect(r.unmeasured.energy_gpu_adjusted_j).toMatch(/v1/);
    expect(r.energy.baseline).toBeNull();
    expect(r.validation).toEqual({ passed: true, flags: [], checked: [], skipped: { all: 'migrated from schema v1: not validated' } });
    expect(r.notes.at(-1)).toMatch(/migrated/);
    expect(r.energy.window_s).toBe(v1.metrics.duration_s);
  });

  it('migrates measured v1 energies into raw readings and the total', () => {
    const v1 = fixture('calibration-v1.json');
    v1.energy.gpu = { joules: 120.5, source: 'nvml_total_energy', reason: null };
    v1.energy.cpu = { joules: 30, source: 'rapl', reason: null };
    v1.metrics.energy_gpu_j = 120.5;
    v1.metrics.energy_cpu_j = 30;
    delete v1.unmeasured.energy_gpu_j;
    delete v1.unmeasured.energy_cpu_j;
    const r = migrateV1(ResultV1.parse(v1));
    expect(r.energy.raw).toEqual({ gpu_j: 120.5, cpu_j: 30, dram_j: null, total_j: 150.5 });
    expect(r.energy.total_domains).toEqual(['gpu', 'cpu']);
    expect(r.metrics.energy_gpu_raw_j).toBe(120.5);
    expect(r.metrics.energy_dram_raw_j).toBeNull();
    expect(r.unmeasured.energy_dram_raw_j).toBe(v1.energy.dram.reason);
    expect(parseResult(v1).ok).toBe(true);
  });

  it('still rejects malformed v1 files with the v1 reason', () => {
    const v1 = fixture('calibration-v1.json');
    v1.energy.gpu = { joules: 1, source: 'x', reason: 'both' };
    const parsed = parseResult(v1);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.reason).toMatch(/schema v1/);
    const v1b = fixture('calibration-v1.json');
    v1b.metrics.iterations = null;
    const p2 = parseResult(v1b);
    expect(p2.ok).toBe(false);
    if (!p2.ok) expect(p2.reason).toMatch(/iterations/);
  });
});

describe('result schema v3 validation', () => {
  it('accepts the worker calibration result (no energy measurable on this host)', () => {
    const r = parseResult(fixture('calibration-v3-cpu.json'));
    expect(r.ok).toBe(true);
  });

  it('accepts a calibration result with a (fake) GPU: timeline, baseline, cross-check, flags', () => {
    const parsed = parseResult(fixture('calibration-v3-fake-gpu.json'));
    if (!parsed.ok) throw new Error(parsed.reason);
    const r = parsed.result;
    // steady 300 W fake GPU; window edges are aligned to the fake counter's 100 ms updates
    expect(r.energy.gpu.joules).toBeCloseTo(300 * (r.energy.window_s ?? 0), 0);
    expect(r.energy.baseline?.gpu_power_w).toBeGreaterThan(0);
    expect(r.energy.cross_check?.agreed).toBe(true);
    expect(r.timeline?.gpus[0]?.t_s.length).toBeGreaterThan(5);
    expect(r.validation.flags.map((f) => f.gate)).toContain('thermal_throttling');
    expect(r.validation.passed).toBe(true);
    expect(typeof r.metrics.energy_gpu_adjusted_j).toBe('number');
  });

  it('keeps the baseline stability record and the machine state (fake GPU), and rejects mistyped ones', () => {
    const doc = fixture('pytorch-v3-fake-gpu.json');
    const parsed = parseResult(doc);
    if (!parsed.ok) throw new Error(parsed.reason);
    const b = parsed.result.energy.baseline;
    expect(b?.extensions).toBe(0);
    expect(b?.cv_max).toBe(0.05);
    expect(b?.temp_start_c).toBe(45);
    expect(b?.steps?.length).toBe(1);
    const gpu = parsed.result.environment.nvml?.gpus?.[0];
    expect(gpu?.performance_state).toBe('P0');
    expect(gpu?.ecc_mode_current).toBe(true);
    expect(gpu?.locked_clocks).toBeNull();
    expect(gpu?.unavailable?.locked_clocks).toMatch(/read-back/);
    expect(parsed.result.validation.checked.concat(Object.keys(parsed.result.validation.skipped))).toEqual(
      expect.arrayContaining(['baseline_unstable', 'warmup_not_converged']),
    );
    const bad = clone(doc);
    bad.environment.nvml.gpus[0].ecc_mode_current = 'on';
    expect(parseResult(bad).ok).toBe(false);
    const bad2 = clone(doc);
    bad2.energy.baseline.extensions = -1;
    expect(parseResult(bad2).ok).toBe(false);
    // results written before these fields existed still parse
    const old = clone(doc);
    for (const k of ['stable', 'stability_reason', 'stability_source', 'samples', 'power_cv', 'power_drift', 'cv_max', 'drift_max', 'temp_start_c', 'temp_end_c', 'temp_mean_c', 'extensions', 'total_s', 'max_s', 'steps']) {
      delete old.energy.baseline[k];
    }
    old.environment = { hostname: 'h', nvml: { gpus: [{ uuid: 'GPU-x' }] } };
    expect(parseResult(old).ok).toBe(true);
  });

  it('accepts a GPU pytorch result with timeline, warm-up, phases and LLM metrics', () => {
    const parsed = parseResult(fixture('pytorch-v3-fake-gpu.json'));
    if (!parsed.ok) throw new Error(parsed.reason);
    const r = parsed.result;
    expect(r.backend).toBe('pytorch');
    expect(r.timeline?.phases.map((p) => p.name)).toEqual(['idle_baseline', 'warmup', 'steady', 'prefill']);
    expect(r.warmup?.mode).toBe('cv');
    expect(r.phases?.prefill.energy_j).not.toBeNull();
    for (const m of ['j_per_output_token', 'output_tokens_per_s', 'tokens_per_s', 'latency_p50_s', 'latency_p99_s', 'ttft_mean_s', 'itl_mean_s', 'energy_gpu_adjusted_j']) {
      expect(typeof r.metrics[m], m).toBe('number');
    }
    expect(r.metrics.j_per_output_token).toBeCloseTo((r.metrics.energy_gpu_raw_j ?? 0) / (r.metrics.output_tokens ?? 1), 9);
  });

  it('rejects unknown versions, bad readings, null metrics without reason and bad flags', () => {
    expect(parseResult({ schema_version: 2 }).ok).toBe(false);
    expect(parseResult(null).ok).toBe(false);
    const base = fixture('calibration-v3-cpu.json');
    const a = clone(base);
    a.energy.gpu = { joules: null, source: null, reason: null };
    expect(parseResult(a).ok).toBe(false);
    const b = clone(base);
    b.metrics.flops = null;
    const pb = parseResult(b);
    expect(pb.ok).toBe(false);
    if (!pb.ok) expect(pb.reason).toMatch(/unmeasured\.flops/);
    const c = clone(base);
    c.validation.flags.push({ gate: 'x', severity: 'maybe', detail: '' });
    expect(parseResult(c).ok).toBe(false);
    const d = clone(base);
    delete d.validation;
    const pd = parseResult(d);
    expect(pd.ok).toBe(false);
    if (!pd.ok) expect(pd.reason).toMatch(/schema v3/);
    const e = clone(base);
    e.metrics.bad = Number.POSITIVE_INFINITY;
    expect(parseResult(e).ok).toBe(false);
  });

  it('keeps the exported names and exports a JSON Schema for v3', () => {
    expect(BACKENDS).toContain('calibration');
    expect(EnergyReading.safeParse({ joules: 1, source: 'rapl', reason: null }).success).toBe(true);
    const js = resultJsonSchema() as { properties?: Record<string, unknown> };
    expect(js.properties).toHaveProperty('validation');
    expect(js.properties).toHaveProperty('timeline');
  });

  const python = spawnSync('python3', ['-c', 'import sys; print(sys.version_info >= (3, 10))'], { encoding: 'utf8' });
  // Skipped only off CI on a machine without Python ≥ 3.10; in CI (which installs it) it must run.
  it.skipIf((python.status !== 0 || !python.stdout.includes('True')) && !process.env['CI'])('validates a result written by the worker now', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lem-worker-'));
    try {
      const cfg = {
        run: { run_id: 'r', experiment_id: 'e', cycle: 1, attempt: 1 },
        experiment: {
          backend: 'calibration',
          measurement: { idle_baseline_s: 0.1, min_window_s: 30, sample_interval_ms: 100, cross_check_threshold: 0.05 },
          extra: {},
          calibration: { matrix_size: 16, duration_s: 0.2, dtype: 'float32', device: 'cpu' },
        },
      };
      writeFileSync(join(dir, 'CONFIG.json'), JSON.stringify(cfg));
      const proc = spawnSync('python3', ['-m', 'lem_worker', 'run', join(dir, 'CONFIG.json'), '--out', join(dir, 'out')], {
        encoding: 'utf8',
        env: { ...process.env, PYTHONPATH: join(root, 'images', 'worker') },
      });
      expect(proc.status, proc.stderr).toBe(0);
      const parsed = parseResult(JSON.parse(readFileSync(join(dir, 'out', 'result.json'), 'utf8')));
      if (!parsed.ok) throw new Error(parsed.reason);
      expect(parsed.result.validation.passed).toBe(false);
      expect(parsed.result.validation.flags.map((f) => f.gate)).toContain('window_too_short');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
