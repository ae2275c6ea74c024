/**
 * The experiment config: one measured configuration of one backend.
 * This zod schema is the single source of truth; the TypeScript types are inferred from it and
 * the worker receives the resolved (defaults applied) object as JSON.
 */
import { z } from 'zod';
import { type BackendName, invalidCombinations } from '../contract/backends.js';
import { servingRules, Traffic } from './traffic.js';
import { reasoningProblems } from './reasoning-registry.js';
import { PytorchSection } from './sections/pytorch.js';
import { TensorrtSection } from './sections/tensorrt.js';
import { VllmSection } from './sections/vllm.js';

export { PytorchSection, TensorrtSection, VllmSection };

const strict = <T extends z.ZodRawShape>(shape: T) => z.strictObject(shape);
const posInt = z.number().int().positive();

export const Precision = z.enum(['fp32', 'fp16', 'bf16', 'fp8']);

/** The model id rule, in words (the error message and the README say the same). */
export const MODEL_ID_RULE =
  "a model id is a Hugging Face id ('name' or 'org/name': letters, digits, '.', '_' and '-', each part 1 to 96 characters, not starting or ending with '.' or '-', no '--' or '..') or the absolute path of a local model directory (no '..' parts, no control characters, no '$' or '`')";
const HF_PART = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$/;

/** True when `id` follows MODEL_ID_RULE; whether a local path exists is checked when the file is loaded. */
export function isValidModelId(id: string): boolean {
  if (id.startsWith('/')) {
    if (id.length > 4096 || /[\u0000-\u001f\u007f$`]/.test(id)) return false;
    return !id.split('/').some((part) => part === '..');
  }
  const parts = id.split('/');
  return parts.length <= 2 && parts.every((p) => HF_PART.test(p) && !p.includes('--') && !p.includes('..'));
}

export const Model = strict({
  id: z
    .string()
    .min(1)
    .refine(isValidModelId, { message: MODEL_ID_RULE })
    .describe('Hugging Face model id (org/name) or the absolute path of a local model directory'),
  revision: z.string().min(1).optional(),
  no_weights: z.boolean().default(false).describe('random-initialise from the architecture config: no weights downloaded'),
  architecture: z.string().min(1).optional().describe('shipped architecture config name used with no_weights'),
  trust_remote_code: z.boolean().default(false),
});

export const Quantization = strict({
  method: z.enum(['none', 'bnb_8bit', 'bnb_4bit', 'awq', 'gptq', 'fp8']).default('none'),
});

export const Batching = strict({
  strategy: z.enum(['static', 'dynamic', 'sorted']).default('static'),
  batch_size: posInt.default(1),
  max_tokens_per_batch: posInt.optional().describe('token budget per batch for the dynamic strategy'),
});

export const DECODER_PRESETS = {
  deterministic: { do_sample: false, temperature: 0, top_p: 1, top_k: 0 },
  standard: { do_sample: true, temperature: 1, top_p: 0.95, top_k: 50 },
  creative: { do_sample: true, temperature: 1.3, top_p: 0.98, top_k: 100 },
  factual: { do_sample: true, temperature: 0.3, top_p: 0.9, top_k: 20 },
} as const;

export const Decoder = strict({
  preset: z.enum(['deterministic', 'standard', 'creative', 'factual']).default('deterministic'),
  temperature: z.number().min(0).optional(),
  top_p: z.number().gt(0).max(1).optional(),
  top_k: z.number().int().min(0).optional(),
  do_sample: z.boolean().optional(),
  repetition_penalty: z.number().positive().optional(),
  fixed_length: z.boolean().default(true).describe('min_new_tokens = max_new_tokens, for comparable runs'),
});

/** Fields every prompt source has. */
const promptCommon = {
  seed: z.number().int().min(0).default(0).describe('seeds prompt sampling/shuffling, synthetic prompts and random-initialised (no_weights) models'),
  chat_template: z.boolean().default(true).describe("wrap each prompt in the tokenizer's chat template when it has one"),
};

export const Prompts = z.discriminatedUnion('source', [
  strict({ source: z.literal('builtin'), name: z.string().min(1).default('mixed'), count: posInt.default(100), ...promptCommon }),
  strict({ source: z.literal('file'), path: z.string().min(1), column: z.string().optional(), count: posInt.optional(), ...promptCommon }),
  strict({
    source: z.literal('huggingface'),
    ...promptCommon,
    dataset: z.string().min(1),
    subset: z.string().optional(),
    split: z.string().default('test'),
    column: z.string().default('text'),
    count: posInt.default(100),
  }),
  strict({ source: z.literal('synthetic'), input_len: posInt, count: posInt.default(100), ...promptCommon }),
]);

export const Warmup = strict({
  mode: z.enum(['fixed', 'cv']).default('fixed'),
  iterations: z.number().int().min(0).default(3),
  cv_threshold: z.number().positive().default(0.05),
  window: z.number().int().min(2).default(3),
  max_iterations: posInt.default(30),
});

export const Measurement = strict({
  idle_baseline_s: z.number().min(0).default(10),
  min_window_s: z.number().min(0).default(30),
  sample_interval_ms: z.number().int().min(10).default(100),
  cross_check_threshold: z.number().positive().default(0.05),
  idle_baseline_max_s: z
    .number()
    .min(0)
    .default(60)
    .describe('an unstable idle baseline is re-measured in steps of idle_baseline_s up to this total; below idle_baseline_s: no extension'),
  baseline_max_cv: z.number().positive().default(0.05).describe('idle baseline is unstable when the power CV over its window exceeds this'),
  baseline_max_drift: z
    .number()
    .positive()
    .default(0.05)
    .describe('idle baseline is unstable when |least-squares power slope x window / mean| exceeds this, or power rose by more than this'),
  gpu_ids: z.array(z.number().int().min(0)).optional(),
  gpus: z
    .number()
    .int()
    .min(1)
    .optional()
    .describe('how many GPUs a run needs; on a host with more, runs go to disjoint GPU sets of this size side by side (docker runtime)'),
  timeout_s: z.number().positive().optional().describe('kill the run after this long'),
  device_lock_timeout_s: z
    .number()
    .positive()
    .optional()
    .describe('how long a run waits for another measurement to release its devices before failing (worker default 3600 s)'),
  max_repetitions: posInt
    .default(1000)
    .describe('the workload is repeated until min_window_s is filled, at most this many times'),
  prefill_split: z
    .boolean()
    .default(true)
    .describe('measure a prefill-only pass to split energy into prefill and decode; false: no split (those metrics unmeasured)'),
  nvml_probe_s: z
    .number()
    .min(0)
    .optional()
    .describe("seconds the meter probes NVML's energy counter update period at start (worker default when unset)"),
});

/** Knobs that used to hide in `extra:` and are typed fields now: where each one moved. */
export const MOVED_EXTRA_KNOBS: Readonly<Record<string, string>> = {
  seed: 'prompts.seed',
  chat_template: 'prompts.chat_template',
  max_repetitions: 'measurement.max_repetitions',
  prefill_split: 'measurement.prefill_split',
  nvml_probe_s: 'measurement.nvml_probe_s',
  loader: 'pytorch.loader',
  request_timeout_s: 'vllm.request_timeout_s',
};

function movedKnobs(extra: Record<string, unknown>, ctx: z.RefinementCtx): void {
  for (const key of Object.keys(extra)) {
    const to = MOVED_EXTRA_KNOBS[key];
    if (to !== undefined) ctx.addIssue({ code: 'custom', path: [key], message: `extra.${key} moved: write it as ${to} (a typed field)` });
  }
}

export const Reasoning = strict({
  enabled: z.boolean().optional().describe("ask the model to reason (true) or not (false); absent: the model's own default"),
  effort: z.enum(['low', 'medium', 'high']).optional().describe('reasoning effort, for families that take one (gpt-oss)'),
  budget_tokens: posInt.optional().describe('recorded; enforced only where the family has a thinking budget'),
});

const common = {
  name: z.string().min(1).optional().describe('a label for tables and reports'),
  measurement: Measurement.default(Measurement.parse({})),
  extra: z
    .record(z.string(), z.unknown())
    .default({})
    .superRefine(movedKnobs)
    .describe('engine keyword arguments, passed to the engine untouched and recorded in the result'),
};

const llmCommon = {
  ...common,
  model: Model,
  precision: Precision.default('bf16'),
  quantization: Quantization.default({ method: 'none' }),
  batching: Batching.default(Batching.parse({})),
  decoder: Decoder.default(Decoder.parse({})),
  max_input_tokens: posInt.default(512),
  max_output_tokens: posInt.default(128),
  prompts: Prompts.default(Prompts.parse({ source: 'builtin' })),
  warmup: Warmup.default(Warmup.parse({})),
  traffic: Traffic.optional().describe('how requests arrive: at a served model (vllm.endpoint or vllm.mode: server) or at the offline vllm engine (per-request submission); see src/config/traffic.ts'),
  reasoning: Reasoning.optional().describe('how the model is asked to reason: see images/worker/lem_worker/data/reasoning.yaml'),
};

export const CalibrationSection = strict({
  matrix_size: z.number().int().min(8).max(16384).default(256),
  duration_s: z.number().positive().max(3600).default(2),
  dtype: z.enum(['float32', 'float64']).default('float64'),
  device: z.enum(['cpu', 'cuda']).default('cpu'),
});

export const PytorchExperiment = strict({
  backend: z.literal('pytorch'),
  ...llmCommon,
  pytorch: PytorchSection.default(PytorchSection.parse({})),
});
export const VllmExperiment = strict({
  backend: z.literal('vllm'),
  ...llmCommon,
  vllm: VllmSection.default(VllmSection.parse({})),
});
export const TensorrtExperiment = strict({
  backend: z.literal('tensorrt'),
  ...llmCommon,
  tensorrt: TensorrtSection.default(TensorrtSection.parse({})),
});
export const CalibrationExperiment = strict({
  backend: z.literal('calibration'),
  ...common,
  calibration: CalibrationSection.default(CalibrationSection.parse({})),
});

/** Cross-field rules that a backend imposes; each failure names the field it is about. */
function backendRules(cfg: z.infer<typeof ExperimentBase>, ctx: z.RefinementCtx): void {
  if (!('precision' in cfg)) return; // not an llm-kind backend: no model, precision or batching
  servingRules(cfg, ctx);
  const values = { precision: cfg.precision, 'quantization.method': cfg.quantization.method, 'batching.strategy': cfg.batching.strategy };
  for (const hit of invalidCombinations(cfg.backend, values)) ctx.addIssue({ code: 'custom', path: hit.path, message: hit.why });
  if (cfg.batching.strategy === 'dynamic' && cfg.batching.max_tokens_per_batch === undefined) {
    ctx.addIssue({ code: 'custom', path: ['batching', 'max_tokens_per_batch'], message: 'the dynamic strategy needs a token budget: set batching.max_tokens_per_batch' });
  }
  if (cfg.reasoning) {
    for (const [field, message] of reasoningProblems(cfg.model.id, cfg.reasoning)) ctx.addIssue({ code: 'custom', path: ['reasoning', field], message });
  }
  if (cfg.decoder.preset === 'deterministic' && (cfg.decoder.do_sample === true || (cfg.decoder.temperature ?? 0) > 0)) {
    ctx.addIssue({ code: 'custom', path: ['decoder'], message: 'the deterministic preset is greedy: do not combine it with do_sample or a temperature above 0' });
  }
}

const ExperimentBase = z.discriminatedUnion('backend', [
  PytorchExperiment,
  VllmExperiment,
  TensorrtExperiment,
  CalibrationExperiment,
]);

export const ExperimentConfig = ExperimentBase.superRefine(backendRules);
export type ExperimentConfig = z.infer<typeof ExperimentConfig>;
export type ExperimentInput = z.input<typeof ExperimentConfig>;

/**
 * The section schema of each backend in the registry (contract/backends.ts): the type checker asks
 * for one here when a backend is added there.
 */
export const SECTION_SCHEMAS = {
  pytorch: PytorchSection,
  vllm: VllmSection,
  tensorrt: TensorrtSection,
  calibration: CalibrationSection,
} as const satisfies { [B in BackendName]: z.ZodType };

export { BACKEND_SECTION, LLM_ONLY_FIELDS } from '../contract/backends.js';
