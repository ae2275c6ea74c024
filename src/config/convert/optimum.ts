/**
 * optimum-benchmark Hydra configs and ai_energy_benchmarks configs → lem campaign parts.
 *
 * optimum-benchmark: `defaults:` names the backend (pytorch, vllm, tensorrt-llm), the scenario
 *   (inference, energy_star) and the launcher; `backend:` {model → model.id, no_weights →
 *   model.no_weights, torch_dtype/dtype → precision, device_ids → measurement.gpu_ids, and the
 *   engine's own keys lem's section has}; `scenario:` {input_shapes.batch_size → batching.batch_size,
 *   input_shapes.sequence_length → prompts synthetic input_len and max_input_tokens,
 *   generate_kwargs.max_new_tokens → max_output_tokens, min_new_tokens = max_new_tokens →
 *   decoder.fixed_length, dataset_name/text_column_name/num_samples → prompts (huggingface),
 *   iterations → cycles (repetitions are lem runs), warmup_runs → warmup.iterations}.
 *   The launcher (lem isolates runs in containers), hydra: and energy/latency/memory switches (lem
 *   always measures all three) become comments.
 * ai_energy_benchmarks: name → campaign_name; backend {type, model, device_ids}; scenario as above;
 *   backend.endpoint (lem starts its own engine), metrics: and reporter: become comments.
 */
import { gpuIds, mapBackend, mapPrecision, SECTION_KEYS, type LemBackend } from './fields.js';
import { campaignName, emptyConversion, isRecord, setPath, type Conversion } from './types.js';

function defaultsOf(src: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  if (!Array.isArray(src.defaults)) return out;
  for (const d of src.defaults) {
    if (isRecord(d)) for (const [k, v] of Object.entries(d)) if (typeof v === 'string') out[k.replace(/^override\s+/, '')] = v;
  }
  return out;
}

function scenario(c: Conversion, cfg: Record<string, unknown>, sc: Record<string, unknown>, prefix: string): void {
  const un = (k: string, v: unknown, reason: string): void => void c.unmapped.push({ near: ['configs'], key: `${prefix}${k}`, value: v, reason });
  let dataset: string | null = null;
  let column: string | null = null;
  let count: unknown;
  let inputLen: unknown;
  for (const [k, v] of Object.entries(sc)) {
    if (k === 'name' || k === '_target_') continue;
    if (k === 'input_shapes' && isRecord(v)) {
      for (const [ik, iv] of Object.entries(v)) {
        if (ik === 'batch_size') setPath(cfg, 'batching.batch_size', iv);
        else if (ik === 'sequence_length') inputLen = iv;
        else un(`${k}.${ik}`, iv, 'no lem field');
      }
    } else if (k === 'generate_kwargs' && isRecord(v)) {
      for (const [gk, gv] of Object.entries(v)) {
        if (gk === 'max_new_tokens') cfg.max_output_tokens = gv;
        else if (gk === 'min_new_tokens') {
          if (gv !== v.max_new_tokens) setPath(cfg, 'decoder.fixed_length', false);
        } else if (gk === 'do_sample' || gk === 'temperature' || gk === 'top_p' || gk === 'top_k' || gk === 'repetition_penalty') {
          setPath(cfg, `decoder.${gk}`, gv);
          if ((gk === 'do_sample' && gv === true) || (gk === 'temperature' && typeof gv === 'number' && gv > 0)) setPath(cfg, 'decoder.preset', 'standard');
        } else un(`${k}.${gk}`, gv, 'no lem decoder field');
      }
    } else if (k === 'dataset_name') dataset = typeof v === 'string' ? v : null;
    else if (k === 'text_column_name') column = typeof v === 'string' ? v : null;
    else if (k === 'num_samples') count = v;
    else if (k === 'iterations') c.settings.cycles = v;
    else if (k === 'warmup_runs') setPath(cfg, 'warmup.iterations', v);
    else if (k === 'energy' || k === 'latency' || k === 'memory') {
      if (v === false) un(k, v, 'lem always measures energy, latency and memory');
    } else un(k, v, 'no lem field');
  }
  if (dataset) cfg.prompts = { source: 'huggingface', dataset, ...(column ? { column } : {}), ...(count !== undefined ? { count } : {}) };
  else if (inputLen !== undefined) cfg.prompts = { source: 'synthetic', input_len: inputLen, ...(count !== undefined ? { count } : {}) };
  else if (count !== undefined) cfg.prompts = { source: 'builtin', count };
  if (inputLen !== undefined) cfg.max_input_tokens = inputLen;
}

function backendBlock(c: Conversion, cfg: Record<string, unknown>, b: Record<string, unknown>, backend: LemBackend, prefix: string): void {
  const un = (k: string, v: unknown, reason: string): void => void c.unmapped.push({ near: ['configs'], key: `${prefix}${k}`, value: v, reason });
  for (const [k, v] of Object.entries(b)) {
    if (k === 'name' || k === 'type' || k === '_target_' || k === 'version') continue;
    if (k === 'model') setPath(cfg, 'model.id', v);
    else if (k === 'no_weights') setPath(cfg, 'model.no_weights', v);
    else if (k === 'torch_dtype' || k === 'dtype') {
      const p = mapPrecision(v);
      if (p) cfg.precision = p;
      else un(k, v, 'lem precisions are fp32, fp16, bf16, fp8');
    } else if (k === 'device_ids') {
      const ids = gpuIds(v);
      if (ids) setPath(cfg, 'measurement.gpu_ids', ids);
      else un(k, v, 'expected GPU indices');
    } else if (k === 'device') {
      if (v !== 'cuda') un(k, v, 'lem measures LLM backends on CUDA GPUs');
    } else if (k === 'endpoint') un(k, v, 'lem starts and measures its own engine; a running server is not reused');
    else if (k === 'trust_remote_code') setPath(cfg, 'model.trust_remote_code', v);
    else if (k === 'tensor_parallel_size' && backend === 'tensorrt') setPath(cfg, 'tensorrt.tp_size', v);
    else if (SECTION_KEYS[backend].has(k)) setPath(cfg, `${backend}.${k}`, v);
    else if (k === 'engine_args' && isRecord(v)) {
      for (const [ek, ev] of Object.entries(v)) {
        if (SECTION_KEYS[backend].has(ek)) setPath(cfg, `${backend}.${ek}`, ev);
        else un(`${k}.${ek}`, ev, `lem's ${backend} section has no such field`);
      }
    } else un(k, v, `lem's ${backend} config has no such field`);
  }
}

export function convertOptimumHydra(src: Record<string, unknown>, fallbackName: string): Conversion {
  const c = emptyConversion('optimum-benchmark Hydra config');
  const defaults = defaultsOf(src);
  c.settings.campaign_name = campaignName(src.name, fallbackName);
  const b = isRecord(src.backend) ? src.backend : {};
  const named = defaults.backend ?? (typeof b.name === 'string' ? b.name : undefined);
  const backend = mapBackend(named);
  if (!backend) {
    c.warnings.push(`backend ${named === undefined ? '(none named)' : named}: lem has pytorch, vllm and tensorrt; pytorch assumed`);
    c.unmapped.push({ near: ['configs'], key: 'defaults.backend', value: named ?? null, reason: 'no such lem backend; pytorch assumed' });
  }
  const be = backend ?? 'pytorch';
  const cfg: Record<string, unknown> = { backend: be };
  if (typeof src.name === 'string') cfg.name = src.name;
  backendBlock(c, cfg, b, be, 'backend.');
  if (isRecord(src.scenario)) scenario(c, cfg, src.scenario, 'scenario.');
  const scenarioName = defaults.scenario ?? (isRecord(src.scenario) ? src.scenario.name : undefined);
  if (scenarioName === 'energy_star' && !isRecord(src.scenario)) c.warnings.push('scenario energy_star: its workload settings come from its own file; set prompts and max_output_tokens to match');
  for (const [k, v] of Object.entries(src)) {
    if (['name', 'backend', 'scenario', 'defaults'].includes(k)) continue;
    const reason = k === 'launcher' ? 'lem isolates every run in its own container or process' : k === 'hydra' ? 'Hydra run settings; lem keeps runs in its state directory' : 'no lem field';
    c.unmapped.push({ near: [], key: k, value: v, reason });
  }
  for (const [k, v] of Object.entries(defaults)) {
    if (k === 'backend' || k === 'scenario') continue;
    if (k === 'launcher') c.unmapped.push({ near: [], key: `defaults.${k}`, value: v, reason: 'lem isolates every run in its own container or process' });
  }
  c.configs = [cfg];
  return c;
}

export function convertAiEnergyBenchmarks(src: Record<string, unknown>, fallbackName: string): Conversion {
  const c = emptyConversion('ai_energy_benchmarks config');
  c.settings.campaign_name = campaignName(src.name, fallbackName);
  const b = isRecord(src.backend) ? src.backend : {};
  const backend = mapBackend(b.type);
  if (!backend) c.unmapped.push({ near: ['configs'], key: 'backend.type', value: b.type ?? null, reason: 'no such lem backend; pytorch assumed' });
  const be = backend ?? 'pytorch';
  const cfg: Record<string, unknown> = { backend: be };
  if (typeof src.name === 'string') cfg.name = src.name;
  backendBlock(c, cfg, b, be, 'backend.');
  if (isRecord(src.scenario)) scenario(c, cfg, src.scenario, 'scenario.');
  for (const [k, v] of Object.entries(src)) {
    if (['name', 'backend', 'scenario'].includes(k)) continue;
    const reason = k === 'metrics' ? 'lem measures energy itself (NVML, RAPL) with an idle baseline' : k === 'reporter' ? 'lem records every run; write files with `lem results export`' : 'no lem field';
    c.unmapped.push({ near: [], key: k, value: v, reason });
  }
  c.configs = [cfg];
  return c;
}
