/**
 * Field mapping shared by the config converters: another tool's experiment fields → lem's
 * experiment config (src/config/experiment.ts). Every source key either lands somewhere in the
 * output or is returned as unmapped with the reason; nothing is dropped silently.
 */
import { PytorchSection, TensorrtSection, VllmSection } from '../experiment.js';
import { isRecord, setPath, type Unmapped } from './types.js';

export type LemBackend = 'pytorch' | 'vllm' | 'tensorrt';

export function mapBackend(v: unknown): LemBackend | null {
  if (typeof v !== 'string') return null;
  const s = v.toLowerCase().replace(/[_\s]/g, '-');
  if (['pytorch', 'transformers', 'pt', 'torch', 'optimum'].includes(s)) return 'pytorch';
  if (s === 'vllm') return 'vllm';
  if (['tensorrt', 'tensorrt-llm', 'trt-llm', 'trtllm'].includes(s)) return 'tensorrt';
  return null;
}

export function mapPrecision(v: unknown): string | null {
  if (typeof v !== 'string') return null;
  const s = v.toLowerCase().replace(/^torch\./, '');
  if (['float32', 'fp32', 'float'].includes(s)) return 'fp32';
  if (['float16', 'fp16', 'half'].includes(s)) return 'fp16';
  if (['bfloat16', 'bf16'].includes(s)) return 'bf16';
  if (['fp8', 'float8', 'float8_e4m3fn'].includes(s)) return 'fp8';
  return null;
}

/** The keys of lem's backend sections (from the zod schemas). */
export const SECTION_KEYS: Record<LemBackend, Set<string>> = {
  pytorch: new Set(Object.keys(PytorchSection.shape)),
  vllm: new Set(Object.keys(VllmSection.shape)),
  tensorrt: new Set(Object.keys(TensorrtSection.shape)),
};
const STRATEGIES: Record<string, string> = { static: 'static', dynamic: 'dynamic', sorted: 'sorted', sorted_static: 'sorted', sorted_dynamic: 'sorted' };
const PRESETS = new Set(['deterministic', 'standard', 'creative', 'factual']);
const DECODER_KEYS = new Set(['temperature', 'top_p', 'top_k', 'do_sample', 'repetition_penalty']);

export interface Mapped {
  out: Record<string, unknown>;
  unmapped: Unmapped[];
  warnings: string[];
}

/** GPU indices from 0, "0,1" or [0, 1]; null when it is not that. */
export function gpuIds(v: unknown): number[] | null {
  if (typeof v === 'number' && Number.isInteger(v)) return [v];
  if (typeof v === 'string' && /^\s*\d+(\s*,\s*\d+)*\s*$/.test(v)) return v.split(',').map((x) => Number(x.trim()));
  if (Array.isArray(v) && v.every((x) => typeof x === 'number' && Number.isInteger(x))) return v as number[];
  return null;
}

/**
 * An LLenergyMeasure (v1 or v2) experiment record → lem experiment fields. `near` is where its
 * comments go in the output; `prefix` is the source path of `src` (for messages).
 */
export function mapLlemExperiment(src: Record<string, unknown>, near: string[], prefix = ''): Mapped {
  const out: Record<string, unknown> = {};
  const unmapped: Unmapped[] = [];
  const warnings: string[] = [];
  const un = (key: string, value: unknown, reason: string): void => {
    unmapped.push({ near, key: `${prefix}${key}`, value, reason });
  };
  let dataset: Record<string, unknown> | null = null;
  let count: unknown;
  for (const [k, v] of Object.entries(src)) {
    switch (k) {
      case 'config_name':
      case 'name':
        if (typeof v === 'string') out.name = v;
        break;
      case 'model_name':
        out.model = { id: v };
        break;
      case 'model':
        if (typeof v === 'string') out.model = { id: v };
        else if (isRecord(v) && typeof (v.name ?? v.id) === 'string') out.model = { id: v.name ?? v.id };
        else un(k, v, 'expected a model name');
        break;
      case 'backend':
      case 'engine': {
        const b = mapBackend(v);
        if (b) out.backend = b;
        else un(k, v, `lem has no ${String(v)} backend (pytorch, vllm, tensorrt)`);
        break;
      }
      case 'fp_precision':
      case 'dtype':
      case 'precision':
      case 'torch_dtype': {
        const p = mapPrecision(v);
        if (p) out.precision = p;
        else un(k, v, 'lem precisions are fp32, fp16, bf16, fp8');
        break;
      }
      case 'num_samples':
      case 'n':
      case 'num_prompts':
        count = v;
        break;
      case 'dataset':
        if (typeof v === 'string') dataset = { dataset: v };
        else if (isRecord(v)) {
          dataset = {};
          for (const [dk, dv] of Object.entries(v)) {
            if (dk === 'name' || dk === 'dataset' || dk === 'path') dataset.dataset = dv;
            else if (dk === 'column' || dk === 'text_column' || dk === 'text_column_name') dataset.column = dv;
            else if (dk === 'split' || dk === 'subset') dataset[dk] = dv;
            else if (dk === 'n' || dk === 'num_samples' || dk === 'count') count = dv;
            else un(`${k}.${dk}`, dv, 'no lem prompts field');
          }
        } else un(k, v, 'expected a dataset name or mapping');
        break;
      case 'max_input_tokens':
      case 'max_output_tokens':
        out[k] = v;
        break;
      case 'batch_size':
        setPath(out, 'batching.batch_size', v);
        break;
      case 'batching':
        if (!isRecord(v)) {
          un(k, v, 'expected a mapping');
          break;
        }
        for (const [bk, bv] of Object.entries(v)) {
          if (bk === 'batch_size' || bk === 'max_tokens_per_batch') setPath(out, `batching.${bk}`, bv);
          else if (bk === 'strategy' && typeof bv === 'string' && STRATEGIES[bv]) setPath(out, 'batching.strategy', STRATEGIES[bv]);
          else un(`${k}.${bk}`, bv, 'no lem batching field');
        }
        break;
      case 'decoder':
      case 'decoding':
        if (!isRecord(v)) {
          un(k, v, 'expected a mapping');
          break;
        }
        for (const [dk, dv] of Object.entries(v)) {
          if (dk === 'preset' && typeof dv === 'string' && PRESETS.has(dv)) setPath(out, 'decoder.preset', dv);
          else if (DECODER_KEYS.has(dk)) setPath(out, `decoder.${dk}`, dv);
          else un(`${k}.${dk}`, dv, 'no lem decoder field');
        }
        if (isRecord(out.decoder) && ((out.decoder.do_sample === true) || (typeof out.decoder.temperature === 'number' && out.decoder.temperature > 0)) && out.decoder.preset === undefined) {
          setPath(out, 'decoder.preset', 'standard');
        }
        break;
      case 'quantization':
        if (isRecord(v) && v.load_in_4bit === true) setPath(out, 'quantization.method', 'bnb_4bit');
        else if (isRecord(v) && v.load_in_8bit === true) setPath(out, 'quantization.method', 'bnb_8bit');
        else if (isRecord(v) && (v.quantization === false || v.load_in_4bit === false || v.load_in_8bit === false) && Object.values(v).every((x) => x === false || x === null)) setPath(out, 'quantization.method', 'none');
        else un(k, v, 'only load_in_4bit / load_in_8bit (bitsandbytes) map to lem quantization.method');
        break;
      case 'gpus':
      case 'gpu_list':
      case 'device_ids': {
        const ids = gpuIds(v);
        if (ids) setPath(out, 'measurement.gpu_ids', ids);
        else un(k, v, 'expected GPU indices');
        break;
      }
      case 'warmup_prompts':
        setPath(out, 'warmup.iterations', v);
        break;
      case 'warmup':
        if (isRecord(v)) {
          for (const [wk, wv] of Object.entries(v)) {
            if (wk === 'n_warmup' || wk === 'iterations' || wk === 'warmup_prompts') setPath(out, 'warmup.iterations', wv);
            else if (wk === 'cv_threshold') {
              setPath(out, 'warmup.cv_threshold', wv);
              setPath(out, 'warmup.mode', 'cv');
            } else if (wk === 'enabled' && wv === false) setPath(out, 'warmup.iterations', 0);
            else if (wk !== 'enabled') un(`${k}.${wk}`, wv, 'no lem warmup field');
          }
        } else un(k, v, 'expected a mapping');
        break;
      case 'pytorch':
      case 'transformers':
      case 'vllm':
      case 'tensorrt':
      case 'tensorrt_llm': {
        const b = mapBackend(k) as LemBackend;
        if (!isRecord(v)) {
          if (v !== null && v !== undefined) un(k, v, 'expected a mapping');
          break;
        }
        for (const [sk, sv] of Object.entries(v)) {
          if (sk === 'batch_size') setPath(out, 'batching.batch_size', sv);
          else if (sk === 'tensor_parallel_size' && b === 'tensorrt') setPath(out, 'tensorrt.tp_size', sv);
          else if (SECTION_KEYS[b].has(sk)) setPath(out, `${b}.${sk}`, sv);
          else if (sk === 'dtype' || sk === 'torch_dtype') {
            const p = mapPrecision(sv);
            if (p) out.precision = p;
            else un(`${k}.${sk}`, sv, 'lem precisions are fp32, fp16, bf16, fp8');
          } else if (sk === 'load_in_4bit' || sk === 'load_in_8bit') {
            if (sv === true) setPath(out, 'quantization.method', sk === 'load_in_4bit' ? 'bnb_4bit' : 'bnb_8bit');
          } else un(`${k}.${sk}`, sv, `lem's ${b} section has no such field (${[...SECTION_KEYS[b]].join(', ')})`);
        }
        break;
      }
      default:
        un(k, v, 'no lem experiment field');
    }
  }
  if (dataset || count !== undefined) {
    if (dataset && typeof dataset.dataset === 'string' && dataset.dataset !== 'builtin') {
      out.prompts = { source: 'huggingface', ...dataset, ...(count !== undefined ? { count } : {}) };
    } else out.prompts = { source: 'builtin', ...(count !== undefined ? { count } : {}) };
  }
  return { out, unmapped, warnings };
}

function flatten(o: Record<string, unknown>, prefix = ''): Array<[string, unknown]> {
  return Object.entries(o).flatMap(([k, v]) => (isRecord(v) && Object.keys(v).length > 0 ? flatten(v, `${prefix}${k}.`) : [[`${prefix}${k}`, v] as [string, unknown]]));
}

/**
 * A grid axis (dotted source key → values) as a lem vary entry: each value is mapped like a field
 * of an experiment; the axis maps when every value lands on the same single lem field.
 */
export function mapAxis(key: string, values: readonly unknown[], map: (src: Record<string, unknown>) => Mapped): { key: string; values: unknown[] } | { reason: string } {
  let target: string | null = null;
  const out: unknown[] = [];
  for (const v of values) {
    const src: Record<string, unknown> = {};
    setPath(src, key, v);
    const m = map(src);
    if (m.unmapped.length > 0) return { reason: m.unmapped[0]?.reason ?? 'no lem field' };
    const leaves = flatten(m.out).filter(([k]) => k !== 'prompts.source');
    if (leaves.length !== 1) return { reason: 'it does not map to exactly one lem field' };
    const [k, mv] = leaves[0] as [string, unknown];
    if (target !== null && k !== target) return { reason: 'its values map to different lem fields' };
    target = k;
    out.push(mv);
  }
  return target ? { key: target, values: out } : { reason: 'no values' };
}
