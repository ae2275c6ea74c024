/**
 * `lem config params`: the typed engine parameters come from the zod sections, and the engine-parameter
 * catalogue the worker's coverage audit uses names only fields the schemas have.
 */
import { describe, expect, it } from 'vitest';
import { backendParams, catalogueCoverage, engineCatalogue, ENGINE_BACKENDS } from '../../src/config/params.js';
import { ExperimentConfig } from '../../src/config/experiment.js';
import { expandGrid } from '../../src/config/grid.js';
import { loadReasoningRegistry, selectFamily } from '../../src/config/reasoning-registry.js';
import { lem } from '../helpers/cli.js';

const TARGETS = { pytorch: 0.95, tensorrt: 0.95, vllm: 0.9 } as const;

describe('engine parameters from the schemas', () => {
  it('lists every section field with type, default and the energy-relevant ones the brief names', () => {
    const vllm = new Map(backendParams('vllm').map((r) => [r.field, r]));
    for (const f of ['tensor_parallel_size', 'pipeline_parallel_size', 'gpu_memory_utilization', 'max_num_seqs', 'max_num_batched_tokens',
      'enforce_eager', 'kv_cache_dtype', 'enable_prefix_caching', 'enable_chunked_prefill', 'speculative_config.num_speculative_tokens']) {
      expect(vllm.has(`vllm.${f}`), f).toBe(true);
    }
    expect(vllm.get('vllm.gpu_memory_utilization')).toMatchObject({ type: 'number > 0 <= 1', default: 0.9 });
    expect(vllm.get('quantization.method')?.type).toContain('"awq"');
    const trt = backendParams('tensorrt').map((r) => r.field);
    expect(trt).toEqual(expect.arrayContaining(['tensorrt.tp_size', 'tensorrt.pp_size', 'tensorrt.max_batch_size', 'tensorrt.max_num_tokens',
      'tensorrt.kv_cache.free_gpu_memory_fraction', 'tensorrt.cuda_graphs']));
    const py = new Map(backendParams('pytorch').map((r) => [r.field, r]));
    expect(py.get('pytorch.lora')?.type).toBe('list of {id, revision, merge}');
    expect(py.has('pytorch.num_beams')).toBe(true);
  });

  it('the catalogue maps engine parameters only to fields the schema has, and meets the coverage targets', () => {
    const cat = engineCatalogue();
    for (const b of ENGINE_BACKENDS) {
      const c = catalogueCoverage(b, cat);
      expect(c.typed.filter((t) => !t.known).map((t) => t.field), b).toEqual([]);
      expect(c.coverage ?? 0, b).toBeGreaterThanOrEqual(TARGETS[b]);
    }
    const broken = { ...cat, vllm: { ...cat.vllm, typed: { ...cat.vllm.typed, new_knob: 'vllm.new_knob' } } };
    expect(catalogueCoverage('vllm', broken).typed.filter((t) => !t.known).map((t) => t.engine)).toEqual(['new_knob']);
  });

  it('a grid over a new typed field and a reasoning section parse; a wrong value names the field', () => {
    const base = { backend: 'vllm', model: { id: 'Qwen/Qwen3-0.6B' }, reasoning: { enabled: false } };
    const ok = ExperimentConfig.safeParse({ ...base, vllm: { kv_cache_dtype: 'fp8', speculative_config: { method: 'ngram', num_speculative_tokens: 3 } } });
    expect(ok.success).toBe(true);
    const bad = ExperimentConfig.safeParse({ ...base, vllm: { block_size: 12 } });
    expect(bad.success).toBe(false);
    expect(bad.error?.issues[0]?.path).toEqual(['vllm', 'block_size']);
    expect(ExperimentConfig.safeParse({ ...base, reasoning: { effort: 'max' } }).error?.issues[0]?.path).toEqual(['reasoning', 'effort']);
  });

  it('reasoning requests a family cannot honour fail validation at the field, and a grid drops them with a note', () => {
    const reg = loadReasoningRegistry();
    expect(['openai/gpt-oss-20b', 'Qwen/Qwen3-8B', 'nvidia/Llama-3_3-Nemotron-Super-49B-v1_5', 'google/gemma-3-1b-it'].map((id) => selectFamily(id, reg)?.name))
      .toEqual(['gpt-oss', 'qwen3', 'nemotron-v2', 'gemma']);
    const gemma = ExperimentConfig.safeParse({ backend: 'vllm', model: { id: 'google/gemma-3-1b-it' }, reasoning: { enabled: true } });
    expect(gemma.error?.issues.map((i) => [i.path.join('.'), i.message])).toEqual([['reasoning.enabled', 'google/gemma-3-1b-it (gemma) has no reasoning mode']]);
    const oss = ExperimentConfig.safeParse({ backend: 'vllm', model: { id: 'openai/gpt-oss-20b' }, reasoning: { effort: 'high' } });
    expect(oss.success).toBe(true);
    const fail = (): never => {
      throw new Error('no hard error expected');
    };
    const g = expandGrid({ backend: 'vllm' }, { 'model.id': ['google/gemma-3-1b-it', 'Qwen/Qwen3-8B'], 'reasoning.enabled': [true, false], 'vllm.kv_cache_dtype': ['auto', 'fp8'] }, fail);
    expect(g.combos).toHaveLength(6);
    expect(g.notes.filter((n) => n.includes('has no reasoning mode'))).toHaveLength(2);
  });

  it('CLI: the table, --json and --coverage; an unknown backend is a usage error', () => {
    const table = lem(['config', 'params', 'vllm']);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^vllm\.max_num_batched_tokens\s+integer > 0\s+\(engine default\)/m);
    const json = JSON.parse(lem(['config', 'params', 'tensorrt', '--json']).stdout) as { schema: string; parameters: Array<{ field: string; grid_axis: string }> };
    expect(json.schema).toBe('lem.config.params/1');
    expect(json.parameters.find((p) => p.field === 'tensorrt.pp_size')?.grid_axis).toBe('tensorrt.pp_size');
    const cov = lem(['config', 'params', 'vllm', '--coverage']);
    expect(cov.stdout).toMatch(/energy-relevant parameters covered: 23 of 24 \(95\.8 %\); not typed: enable_expert_parallel/);
    const bad = lem(['config', 'params', 'onnx']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("unknown backend 'onnx'");
  });
});
