/**
 * The engine configuration of an experiment: the fields whose change forces a model (re)load —
 * backend, model id and revision, precision, quantisation, the backend's engine arguments and the
 * devices it sits on (and extra.engine_args; for vLLM the engine's seed, prompts.seed; for TensorRT-LLM
 * the token limits behind max_seq_len). Keep in step with the worker's keys (engine_key in
 * images/worker/lem_worker/backends/{pytorch,vllm_args,tensorrt_engine}.py). Batch size, decoder, the
 * prompt set, warm-up and measurement settings (and token limits, outside TensorRT-LLM) do not: runs that
 * differ only in those can share a loaded engine. Pure; the planner groups runs
 * by this key (split-plot order) and the design record names the factors on each side.
 */
import { createHash } from 'node:crypto';
import type { ExperimentConfig } from './experiment.js';
import { canonicalJson } from './identity.js';

/** Dotted field paths (or path prefixes) that belong to the engine configuration, by backend. */
export const ENGINE_FIELDS: Readonly<Record<ExperimentConfig['backend'], readonly string[]>> = {
  pytorch: ['backend', 'model', 'precision', 'quantization', 'pytorch', 'extra.engine_args', 'measurement.gpu_ids'],
  // vLLM's engine seed is prompts.seed (LLM(seed=...)); the worker's key (backends/vllm_args.py) has it too
  vllm: ['backend', 'model', 'precision', 'quantization', 'vllm', 'extra.engine_args', 'measurement.gpu_ids', 'prompts.seed'],
  // TensorRT-LLM's max_seq_len follows the token limits unless tensorrt.max_seq_len is set (backends/tensorrt_engine.py)
  tensorrt: ['backend', 'model', 'precision', 'quantization', 'tensorrt', 'extra.engine_args', 'measurement.gpu_ids', 'max_input_tokens', 'max_output_tokens'],
  calibration: ['backend', 'calibration.device', 'calibration.dtype', 'measurement.gpu_ids'],
};

/** True when the dotted path `field` is (inside) one of the backend's engine fields. */
export function isEngineField(backend: ExperimentConfig['backend'], field: string): boolean {
  return ENGINE_FIELDS[backend].some((p) => field === p || field.startsWith(`${p}.`));
}

function pick(obj: unknown, path: string): unknown {
  let v: unknown = obj;
  for (const k of path.split('.')) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string, unknown>)[k];
  }
  return v;
}

/** The engine configuration as a plain object (dotted path → value), for display and hashing. */
export function engineConfig(cfg: ExperimentConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const p of ENGINE_FIELDS[cfg.backend]) {
    const v = pick(cfg, p);
    if (v !== undefined) out[p] = v;
  }
  return out;
}

/** 12 hex characters of SHA-256 over the canonical engine configuration: equal keys share an engine. */
export function engineKey(cfg: ExperimentConfig): string {
  return createHash('sha256').update(canonicalJson(engineConfig(cfg))).digest('hex').slice(0, 12);
}
