/**
 * Serving config: the traffic section and its rules, the serving fields of the vllm section (URLs
 * with ports and paths survive), VLLM_ENDPOINT, and traffic.rate_rps as a grid axis.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { applyBackendEnv } from '../../src/config/backend-env.js';
import { ExperimentConfig } from '../../src/config/experiment.js';
import { loadCampaign } from '../../src/config/load.js';
import { tempDir } from '../helpers/cli.js';

const base = { backend: 'vllm', model: { id: 'org/model' } };
const issues = (input: unknown): string[] => {
  const r = ExperimentConfig.safeParse(input);
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
};

describe('serving config', () => {
  it('an endpoint keeps its port and path; a non-http URL is rejected at vllm.endpoint', () => {
    const r = ExperimentConfig.parse({ ...base, vllm: { endpoint: 'http://10.0.0.2:8001/proxy/v1', api: 'completions' } });
    expect(r.backend === 'vllm' && r.vllm.endpoint).toBe('http://10.0.0.2:8001/proxy/v1');
    expect(issues({ ...base, vllm: { endpoint: 'ftp://h/v1' } }).join()).toMatch(/^vllm\.endpoint: .*http/);
  });

  it('traffic needs a per-request engine, open loop needs a rate, burstiness only with gamma', () => {
    expect(issues({ ...base, traffic: { arrival: 'poisson', rate_rps: 20, requests: 100, seed: 1 } })).toEqual([]); // offline vllm: add_request/step
    const served = { ...base, vllm: { mode: 'server' } };
    expect(issues({ ...served, traffic: { arrival: 'poisson', rate_rps: 20, requests: 100, seed: 1 } })).toEqual([]);
    expect(issues({ ...served, traffic: { arrival: 'gamma' } }).join()).toMatch(/traffic\.rate_rps: arrival gamma is open loop/);
    expect(issues({ ...served, traffic: { arrival: 'poisson', rate_rps: 2, burstiness: 0.5 } }).join()).toMatch(/traffic\.burstiness/);
    expect(issues({ ...served, traffic: { arrival: 'closed', rate_rps: 2 } }).join()).toMatch(/traffic\.rate_rps: arrival closed/);
  });

  it('traffic on a batch-only backend (pytorch, tensorrt) is a config error naming the backends that take it', () => {
    for (const backend of ['pytorch', 'tensorrt']) {
      const msg = issues({ backend, model: { id: 'org/model' }, traffic: { arrival: 'poisson', rate_rps: 4 } }).join();
      expect(msg).toMatch(new RegExp(`^traffic: backend ${backend} runs its prompt set in batches.*traffic applies to backend vllm`));
    }
    expect(issues({ backend: 'pytorch', model: { id: 'org/model' } })).toEqual([]);
  });

  it('an offline vllm config resolves exactly as before (no serving defaults added)', () => {
    const r = ExperimentConfig.parse(base);
    expect(r.backend === 'vllm' && Object.keys(r.vllm).sort()).toEqual(['enforce_eager', 'gpu_memory_utilization', 'tensor_parallel_size']);
    expect('traffic' in r).toBe(false);
  });

  it('VLLM_ENDPOINT fills an open endpoint of a vllm config, never a named one; a bad value says so', () => {
    const env = { VLLM_ENDPOINT: 'http://gpu-box:8001/v1' };
    expect(applyBackendEnv(base, env).data).toMatchObject({ vllm: { endpoint: 'http://gpu-box:8001/v1' } });
    expect(applyBackendEnv({ model: { id: 'org/model' } }, { ...env, BENCHMARK_BACKEND: 'vllm' }).data).toMatchObject({ backend: 'vllm', vllm: { endpoint: 'http://gpu-box:8001/v1' } });
    const named = { ...base, vllm: { endpoint: 'http://other:9000/v1' } };
    expect(applyBackendEnv(named, env).data).toBe(named);
    const managed = { ...base, vllm: { mode: 'server' } };
    expect(applyBackendEnv(managed, env).data).toBe(managed);
    const pt = { backend: 'pytorch', model: { id: 'org/model' } };
    expect(applyBackendEnv(pt, env).data).toBe(pt);
    expect(() => applyBackendEnv(base, { VLLM_ENDPOINT: 'gpu-box:8001' })).toThrow(/VLLM_ENDPOINT='gpu-box:8001' .*http/);
  });

  it('traffic.rate_rps is a grid axis', () => {
    const dir = tempDir();
    const file = join(dir, 'c.yaml');
    writeFileSync(
      file,
      'campaign_name: sweep\nbase_config:\n  backend: vllm\n  model: {id: org/model}\n  vllm: {endpoint: "http://127.0.0.1:8000/v1"}\n  traffic: {arrival: poisson, requests: 50}\nvary:\n  traffic.rate_rps: [1, 2, 4, 8]\n',
    );
    const c = loadCampaign(file);
    expect(c.experiments.map((e) => (e.config.backend === 'vllm' ? e.config.traffic?.rate_rps : null))).toEqual([1, 2, 4, 8]);
    expect(c.experiments[0]?.name).toBe('vllm traffic.rate_rps=1');
  });

  it('VLLM_ENDPOINT reaches the vllm combos of a grid that varies the backend', () => {
    const dir = tempDir();
    const file = join(dir, 'c.yaml');
    writeFileSync(file, 'campaign_name: mixed\nbase_config:\n  model: {id: org/model}\nvary:\n  backend: [pytorch, vllm]\n');
    const before = process.env['VLLM_ENDPOINT'];
    process.env['VLLM_ENDPOINT'] = 'http://127.0.0.1:8009/v1';
    try {
      const c = loadCampaign(file);
      const byBackend = Object.fromEntries(c.experiments.map((e) => [e.config.backend, e.config]));
      expect(byBackend['vllm']).toMatchObject({ vllm: { endpoint: 'http://127.0.0.1:8009/v1' } });
      expect(byBackend['pytorch']).not.toHaveProperty('vllm');
    } finally {
      if (before === undefined) delete process.env['VLLM_ENDPOINT'];
      else process.env['VLLM_ENDPOINT'] = before;
    }
  });
});
