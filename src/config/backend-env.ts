/**
 * Backend switching by environment (the backend-switching design of optimum-benchmark ↔
 * ai_energy_benchmarks): `BENCHMARK_BACKEND` sets the backend of configs that leave `backend` out.
 * A config that names its backend keeps it. Unset env + no backend stays the schema's positioned error.
 *
 * Values: pytorch, vllm, tensorrt, calibration (lem's backends), and `optimum` (that design's
 * default), which selects the pytorch backend with optimum-benchmark's energy_star text-generation
 * scenario settings (the AI Energy Score workload), filled only where the config leaves a field open:
 *
 *   energy_star (optimum-benchmark energy_star/text_generation.yaml, scenarios/energy_star)   lem field
 *   backend: pytorch                                                     backend: pytorch
 *   generate_kwargs max_new_tokens = min_new_tokens = 10, greedy         max_output_tokens: 10,
 *     (TEXT_GENERATION_DEFAULT_KWARGS num_return_sequences 1)              decoder: {preset: deterministic, fixed_length: true}
 *   input_shapes.batch_size: 1                                           batching: {strategy: static, batch_size: 1}
 *   dataset EnergyStarAI/text_generation, split train (default),         prompts: {source: huggingface, dataset:
 *     text_column_name text, num_samples 1000                              EnergyStarAI/text_generation, split: train, column: text, count: 1000}
 *   warm-up: 1 full generation + warmup_runs = 10 generations of         warmup: {mode: fixed, iterations: 11}: lem's warm-up
 *     2 new tokens                                                         iterations are full-length, so it warms up at least as much
 *   prefill energy from a pass with max/min_new_tokens = 1;              lem's prefill/decode split (the default), recorded as
 *     decode = generate − prefill                                          measurement.prefill_split: true
 * Not mapped (lem keeps its own, documented defaults): the model (the config must name one), dtype
 * (energy_star's torch_dtype auto → lem's precision default bf16), measurement window (energy_star
 * runs the dataset once; lem repeats passes until measurement.min_window_s), the idle baseline.
 *
 * `VLLM_ENDPOINT` (same design: the vLLM server's URL) fills `vllm.endpoint` of a vllm config that
 * leaves it open, so the run measures that OpenAI-compatible server over HTTP.
 */
import { BACKENDS } from '../contract/backends.js';
import { LemError } from '../util/errors.js';

export const BACKEND_ENV = 'BENCHMARK_BACKEND';
export const ENV_BACKENDS = ['optimum', ...BACKENDS] as const;
export type EnvBackend = (typeof ENV_BACKENDS)[number];

/** energy_star text-generation settings as lem config fields (see the table above). */
export const ENERGY_STAR_PRESET: Readonly<Record<string, unknown>> = {
  backend: 'pytorch',
  max_output_tokens: 10,
  decoder: { preset: 'deterministic', fixed_length: true },
  batching: { strategy: 'static', batch_size: 1 },
  prompts: { source: 'huggingface', dataset: 'EnergyStarAI/text_generation', split: 'train', column: 'text', count: 1000 },
  warmup: { mode: 'fixed', iterations: 11 },
  measurement: { prefill_split: true },
  extra: { scenario: 'energy_star' },
};

/** The env's backend choice; null when unset or empty; a LemError listing the valid values when invalid. */
export function backendFromEnv(env: NodeJS.ProcessEnv = process.env): EnvBackend | null {
  const raw = env[BACKEND_ENV];
  if (raw === undefined || raw.trim() === '') return null;
  const v = raw.trim().toLowerCase();
  if (!(ENV_BACKENDS as readonly string[]).includes(v)) {
    throw new LemError(`${BACKEND_ENV}='${raw}' is not a backend; valid values: ${ENV_BACKENDS.join(', ')} (optimum = pytorch with optimum-benchmark's energy_star settings).`);
  }
  return v as EnvBackend;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** `base` with `over` laid on top (over wins; mappings merge key by key). */
function overlay(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = isRecord(v) && isRecord(out[k]) ? overlay(out[k] as Record<string, unknown>, v) : v;
  return out;
}

export interface BackendDefaulted {
  data: Record<string, unknown>;
  /** What was filled, for the user; null when the config was left as it was. */
  note: string | null;
}

/**
 * Fills `backend` (and, for optimum, the energy_star settings the config leaves open) from the env.
 * A config that names a backend is returned unchanged; the env is still checked for validity.
 */
export function applyBackendEnv(data: Record<string, unknown>, env: NodeJS.ProcessEnv = process.env): BackendDefaulted {
  const filled = applyBackendChoice(data, env);
  return applyEndpointEnv(filled, env);
}

function applyBackendChoice(data: Record<string, unknown>, env: NodeJS.ProcessEnv): BackendDefaulted {
  const choice = backendFromEnv(env);
  if (choice === null || 'backend' in data) return { data, note: null };
  if (choice === 'optimum') {
    // A prompts block the config gives replaces the preset's whole (prompts is a tagged union).
    const preset = 'prompts' in data ? Object.fromEntries(Object.entries(ENERGY_STAR_PRESET).filter(([k]) => k !== 'prompts')) : ENERGY_STAR_PRESET;
    return { data: overlay(preset, data), note: `${BACKEND_ENV}=optimum: backend pytorch with optimum-benchmark's energy_star settings where the config leaves them open` };
  }
  return { data: { ...data, backend: choice }, note: `${BACKEND_ENV}=${choice}: backend ${choice}` };
}

export const ENDPOINT_ENV = 'VLLM_ENDPOINT';

/** The env's vLLM server URL (parsed with the URL parser, so ports and paths survive); null when unset or empty. */
export function endpointFromEnv(env: NodeJS.ProcessEnv = process.env): string | null {
  const raw = env[ENDPOINT_ENV];
  if (raw === undefined || raw.trim() === '') return null;
  let url: URL;
  try {
    url = new URL(raw.trim());
  } catch {
    throw new LemError(`${ENDPOINT_ENV}='${raw}' is not a URL; give the server's base URL, e.g. http://127.0.0.1:8000/v1.`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new LemError(`${ENDPOINT_ENV}='${raw}' must be an http:// or https:// URL, e.g. http://127.0.0.1:8000/v1.`);
  }
  return raw.trim();
}

/**
 * `VLLM_ENDPOINT` fills `vllm.endpoint` of a vllm config that leaves it open (no endpoint, not
 * vllm.mode: server); a config that names its endpoint keeps it. The env is checked whenever set.
 */
function applyEndpointEnv(prev: BackendDefaulted, env: NodeJS.ProcessEnv): BackendDefaulted {
  const endpoint = endpointFromEnv(env);
  const { data } = prev;
  if (endpoint === null || data['backend'] !== 'vllm') return prev;
  const section = data['vllm'] ?? {};
  if (!isRecord(section) || 'endpoint' in section || section['mode'] === 'server') return prev;
  const note = `${ENDPOINT_ENV}=${endpoint}: vllm.endpoint`;
  return { data: { ...data, vllm: { ...section, endpoint } }, note: prev.note === null ? note : `${prev.note}; ${note}` };
}
