/**
 * The `tensorrt:` section: TensorRT-LLM's energy-relevant LLM-API arguments as typed fields, named
 * as TensorRT-LLM's `LlmArgs` names them (nvidia.github.io/TensorRT-LLM, "LLM API"): parallelism,
 * scheduler limits, KV-cache config, CUDA graphs. Anything else reaches `LLM(...)` through
 * `extra.engine_args`.
 */
import { z } from 'zod';

const posInt = z.number().int().positive();

export const TrtKvCache = z.strictObject({
  free_gpu_memory_fraction: z.number().gt(0).max(1).optional().describe('fraction of free GPU memory for the KV cache'),
  enable_block_reuse: z.boolean().optional().describe('reuse KV blocks of shared prefixes'),
  dtype: z.enum(['auto', 'fp8']).optional().describe('KV-cache element type'),
  max_tokens: posInt.optional().describe('KV-cache size in tokens'),
});

export const TensorrtSection = z.strictObject({
  tp_size: posInt.default(1).describe('tensor parallelism'),
  pp_size: posInt.optional().describe('pipeline parallelism'),
  max_batch_size: posInt.optional().describe('most requests per step'),
  max_num_tokens: posInt.optional().describe('most tokens per step'),
  max_seq_len: posInt.optional().describe('context length'),
  kv_cache_free_gpu_memory_fraction: z.number().gt(0).max(1).optional().describe('shorthand for kv_cache.free_gpu_memory_fraction'),
  kv_cache: TrtKvCache.optional().describe('KvCacheConfig'),
  cuda_graphs: z.boolean().optional().describe('capture CUDA graphs for decoding (PyTorch flow: cuda_graph_config)'),
  enable_chunked_prefill: z.boolean().optional().describe('split long prefills across steps'),
  scheduler_policy: z.enum(['max_utilization', 'guaranteed_no_evict']).optional().describe('capacity scheduler policy'),
  engine_dir: z.string().optional().describe('prebuilt engine; otherwise built from the model'),
});
export type TensorrtSection = z.infer<typeof TensorrtSection>;
