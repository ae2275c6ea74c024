/**
 * The `vllm:` section: vLLM's energy-relevant engine arguments as typed fields, named as vLLM's
 * EngineArgs names them (docs.vllm.ai, "Engine Arguments"), so the worker passes them to `vllm.LLM`
 * / `vllm serve` unchanged. Anything else reaches the engine through `extra.engine_args`.
 * New fields are optional (absent = the engine's own default) so existing experiment ids do not change.
 */
import { z } from 'zod';
import { VLLM_SERVING_FIELDS } from '../traffic.js';

const posInt = z.number().int().positive();

export const SpeculativeConfig = z.strictObject({
  method: z.enum(['ngram', 'eagle', 'eagle3', 'medusa', 'mlp_speculator', 'draft_model', 'mtp']).describe('speculative decoding method'),
  model: z.string().min(1).optional().describe('draft / EAGLE head model id (not for ngram)'),
  num_speculative_tokens: posInt.describe('tokens proposed per step'),
  prompt_lookup_max: posInt.optional().describe('ngram: longest n-gram matched'),
  prompt_lookup_min: posInt.optional().describe('ngram: shortest n-gram matched'),
});

export const VllmSection = z.strictObject({
  tensor_parallel_size: posInt.default(1).describe('GPUs per pipeline stage (tensor parallelism)'),
  pipeline_parallel_size: posInt.optional().describe('pipeline stages'),
  data_parallel_size: posInt.optional().describe('engine replicas (data parallelism)'),
  gpu_memory_utilization: z.number().gt(0).max(1).default(0.9).describe('fraction of GPU memory vLLM may use (weights + KV cache)'),
  max_num_seqs: posInt.optional().describe('most sequences scheduled per step'),
  max_num_batched_tokens: posInt.optional().describe('most tokens scheduled per step'),
  max_model_len: posInt.optional().describe('context length (prompt + output)'),
  enforce_eager: z.boolean().default(false).describe('no CUDA graphs'),
  kv_cache_dtype: z.enum(['auto', 'fp8', 'fp8_e4m3', 'fp8_e5m2']).optional().describe('KV-cache element type'),
  block_size: z.union([z.literal(8), z.literal(16), z.literal(32), z.literal(64), z.literal(128)]).optional().describe('KV-cache block size in tokens'),
  enable_prefix_caching: z.boolean().optional().describe('reuse KV blocks of shared prefixes (engine default when absent)'),
  enable_chunked_prefill: z.boolean().optional().describe('split long prefills across steps (engine default when absent)'),
  cpu_offload_gb: z.number().min(0).optional().describe('GiB of weights offloaded to CPU memory'),
  swap_space: z.number().min(0).optional().describe('GiB of CPU swap space per GPU for preempted sequences'),
  speculative_config: SpeculativeConfig.optional().describe('speculative decoding'),
  async_scheduling: z.boolean().optional().describe('overlap scheduling with the model step'),
  compilation_level: z.number().int().min(0).max(3).optional().describe('torch.compile level (compilation_config.level); 0 = none'),
  ...VLLM_SERVING_FIELDS,
});
export type VllmSection = z.infer<typeof VllmSection>;
