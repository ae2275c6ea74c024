/** `lem backends`: readiness logic with fake probes, and the real command on this machine. */
import { describe, expect, it } from 'vitest';
import { backendsReport, type BackendProbes } from '../../src/cli/commands/backends.js';
import { lem } from '../helpers/cli.js';

const fakeProbes = (o: { found: Record<string, boolean>; images?: Record<string, boolean> | null; gpus: string[] }): BackendProbes => ({
  python: async () => ({ python: 'fake-python', found: o.found }),
  images: async () =>
    o.images === null || o.images === undefined
      ? { error: 'fake engine down' }
      : { endpoint: 'fake://engine', present: Object.fromEntries(Object.entries(o.images).map(([b, p]) => [b, { image: `lem-${b}`, present: p }])) },
  gpus: async () => o.gpus,
});

describe('backend readiness (fake probes)', () => {
  it('GPU backends need a GPU; packages decide local readiness; images decide docker readiness', async () => {
    const r = await backendsReport(fakeProbes({ found: { torch: true, transformers: true, vllm: true }, images: { pytorch: true, vllm: true, tensorrt: false, calibration: true }, gpus: [] }), {});
    const by = Object.fromEntries(r.backends.map((b) => [b.name, b]));
    expect(by.pytorch?.local.ready).toBe(true);
    expect(by.pytorch?.docker.ready).toBe(true);
    expect(by.vllm?.local).toMatchObject({ ready: false, missing: [] }); // installed, but no GPU
    expect(by.vllm?.gpu_ok).toBe(false);
    expect(by.tensorrt?.local.missing).toEqual(['tensorrt_llm']);
    expect(by.tensorrt?.docker.image_present).toBe(false);
    expect(by.calibration?.local.ready).toBe(true);
    const gpu = await backendsReport(fakeProbes({ found: { vllm: true }, images: null, gpus: ['GPU 0: H100'] }), { BENCHMARK_BACKEND: 'optimum' });
    expect(gpu.backends.find((b) => b.name === 'vllm')?.local.ready).toBe(true);
    expect(gpu.backends.find((b) => b.name === 'vllm')?.docker.ready).toBeNull();
    expect(gpu.engine_error).toBe('fake engine down');
    expect(gpu.env.selects).toBe('pytorch (energy_star settings)');
  });
});

describe('lem backends on this machine', () => {
  it('lists every backend with its needs, as JSON and as a table; list-backends is an alias', () => {
    const r = lem(['backends', '--json'], { env: { BENCHMARK_BACKEND: 'nope' } });
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as { backends: { name: string; needs: { gpu: string }; local: { ready: boolean } }[]; env: { error: string | null } };
    expect(j.backends.map((b) => b.name)).toEqual(['pytorch', 'vllm', 'tensorrt', 'calibration']);
    expect(j.backends.find((b) => b.name === 'vllm')?.needs.gpu).toBe('required');
    // calibration needs only a Python: ready wherever python3 runs (CI has it)
    expect(j.backends.find((b) => b.name === 'calibration')?.local.ready).toBe(true);
    expect(j.env.error).toContain('valid values');
    const t = lem(['list-backends']);
    expect(t.code).toBe(0);
    expect(t.stdout).toMatch(/^calibration\s/m);
  });
});
