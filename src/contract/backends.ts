/**
 * The backend registry: the one place that says which backends lem has and what each one is.
 *
 * Everything else reads it: config (which section a backend has, which grid axes apply, which
 * combinations are invalid and why), results (the `backend` field of a result), runtime (compose
 * service and image), cli (doctor, backends, images). It sits on the ground floor (contract/) so that
 * nothing has to import upward for the vocabulary.
 *
 * Adding a backend: one entry here (and its section schema in config/experiment.ts, which the type
 * checker asks for), plus one worker module in images/worker/lem_worker/backends/ that registers
 * itself under the same name. See README, "Adding a backend".
 */
import { z } from 'zod';

export type GpuNeed = 'required' | 'optional' | 'none';

/** A value a backend refuses for one config field, with the reason shown when a config or grid hits it. */
export interface InvalidValue {
  /** Dotted path of the field in the experiment config. */
  readonly field: 'precision' | 'quantization.method' | 'batching.strategy';
  readonly values: readonly string[];
  readonly why: string;
}

export interface BackendSpec {
  readonly summary: string;
  /** Default compose service that runs it (docker runtime); overridable per campaign. */
  readonly service: string;
  /** Default image of that service when the compose file names none. */
  readonly image: string;
  /** `llm`: generates text from a model (model, prompts, decoder… apply); `calibration`: a fixed CPU/GPU load. */
  readonly kind: 'llm' | 'calibration';
  /** The key of the backend's own config section (e.g. `vllm:`); a grid crosses a backend only with its own. */
  readonly section: string;
  readonly gpu: GpuNeed;
  /** Whether it loads models from the Hugging Face hub (so a token and cache are passed to its service). */
  readonly hub: boolean;
  /** Python modules the worker needs for it, and those it uses when present. */
  readonly pythonPackages: readonly string[];
  readonly optionalPackages: readonly string[];
  readonly invalid: readonly InvalidValue[];
  /**
   * Whether its offline engine takes requests one at a time (lem submits each at its seeded arrival
   * time), so a `traffic:` section applies without a server. Backends without it run their prompt set in
   * batches: `traffic:` is a config error there.
   */
  readonly offlineTraffic: boolean;
}

const continuous = (name: string): InvalidValue => ({
  field: 'batching.strategy',
  values: ['dynamic', 'sorted'],
  why: `${name} schedules batches itself (continuous batching); batching.strategy must be static`,
});
const bnb = (name: string): InvalidValue => ({
  field: 'quantization.method',
  values: ['bnb_8bit', 'bnb_4bit'],
  why: `bitsandbytes quantization is only available on the pytorch backend, not ${name}`,
});

export const BACKEND_REGISTRY = {
  pytorch: {
    summary: 'Hugging Face transformers on PyTorch',
    service: 'pytorch',
    image: 'lem-pytorch',
    kind: 'llm',
    section: 'pytorch',
    gpu: 'optional',
    hub: true,
    pythonPackages: ['torch', 'transformers'],
    optionalPackages: ['pynvml', 'bitsandbytes', 'datasets'],
    invalid: [
      { field: 'precision', values: ['fp8'], why: 'fp8 is not supported by the pytorch (transformers) backend; use vllm or tensorrt' },
      { field: 'quantization.method', values: ['fp8'], why: 'fp8 is not supported by the pytorch (transformers) backend; use vllm or tensorrt' },
    ],
    offlineTraffic: false,
  },
  vllm: {
    summary: 'vLLM offline engine (continuous batching)',
    service: 'vllm',
    image: 'lem-vllm',
    kind: 'llm',
    section: 'vllm',
    gpu: 'required',
    hub: true,
    pythonPackages: ['vllm'],
    optionalPackages: ['pynvml', 'datasets'],
    invalid: [bnb('vllm'), continuous('vllm')],
    offlineTraffic: true,
  },
  tensorrt: {
    summary: 'TensorRT-LLM (LLM API)',
    service: 'tensorrt',
    image: 'lem-tensorrt',
    kind: 'llm',
    section: 'tensorrt',
    gpu: 'required',
    hub: true,
    pythonPackages: ['tensorrt_llm'],
    optionalPackages: ['pynvml', 'datasets'],
    invalid: [bnb('tensorrt'), continuous('tensorrt')],
    offlineTraffic: false,
  },
  calibration: {
    summary: 'a fixed matrix-multiply load that checks the energy meter',
    service: 'cpu',
    image: 'lem-cpu',
    kind: 'calibration',
    section: 'calibration',
    gpu: 'none',
    hub: false,
    pythonPackages: [],
    optionalPackages: ['numpy', 'pynvml'],
    invalid: [],
    offlineTraffic: false,
  },
} as const satisfies Record<string, BackendSpec>;

export type BackendName = keyof typeof BACKEND_REGISTRY;
export const BACKENDS = Object.keys(BACKEND_REGISTRY) as [BackendName, ...BackendName[]];
export const BackendName = z.enum(BACKENDS);

export function backendSpec(name: BackendName): BackendSpec {
  return BACKEND_REGISTRY[name];
}

export function isBackendName(v: unknown): v is BackendName {
  return typeof v === 'string' && Object.hasOwn(BACKEND_REGISTRY, v);
}

/** Backends of one kind, in registry order. */
export function backendsWhere(pred: (spec: BackendSpec, name: BackendName) => boolean): BackendName[] {
  return BACKENDS.filter((b) => pred(BACKEND_REGISTRY[b], b));
}

/** The section key of every backend (pytorch, vllm, …), by backend. */
export const BACKEND_SECTION = Object.fromEntries(BACKENDS.map((b) => [b, BACKEND_REGISTRY[b].section])) as {
  readonly [B in BackendName]: (typeof BACKEND_REGISTRY)[B]['section'];
};

/** Default compose service per backend. */
export const DEFAULT_SERVICES = Object.fromEntries(BACKENDS.map((b) => [b, BACKEND_REGISTRY[b].service])) as Record<BackendName, string>;

/**
 * Top-level experiment fields that only `llm` backends have (a calibration config has none): the
 * grid axes that do not apply to a `calibration`-kind backend.
 */
export const LLM_ONLY_FIELDS = [
  'model',
  'precision',
  'quantization',
  'batching',
  'decoder',
  'max_input_tokens',
  'max_output_tokens',
  'prompts',
  'warmup',
  'traffic',
  'reasoning',
] as const;

/** Whether a grid axis (dotted key) applies to a backend: its own section, or a field of its kind. */
export function axisApplies(key: string, backend: BackendName): boolean {
  const head = key.split('.')[0] as string;
  const spec = BACKEND_REGISTRY[backend];
  if (BACKENDS.some((b) => BACKEND_REGISTRY[b].section === head)) return head === spec.section;
  if (spec.kind !== 'llm' && (LLM_ONLY_FIELDS as readonly string[]).includes(head)) return false;
  return true;
}

/** The registry's refusals that a config hits: field path and reason (one per reason), for a config's own values. */
export function invalidCombinations(
  backend: BackendName,
  values: Readonly<Record<InvalidValue['field'], string | undefined>>,
): Array<{ path: string[]; why: string }> {
  const out: Array<{ path: string[]; why: string }> = [];
  for (const rule of BACKEND_REGISTRY[backend].invalid as readonly InvalidValue[]) {
    const v = values[rule.field];
    if (v === undefined || !rule.values.includes(v) || out.some((o) => o.why === rule.why)) continue;
    out.push({ path: rule.field.split('.'), why: rule.why });
  }
  return out;
}
