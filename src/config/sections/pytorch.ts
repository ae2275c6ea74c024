/**
 * The `pytorch:` section: how transformers loads and runs the model (from_pretrained / generate
 * arguments that change energy), LoRA adapters included. Generation settings shared by every
 * backend (decoder, batching, precision, quantization) are top-level fields.
 */
import { z } from 'zod';

export const LoraAdapter = z.strictObject({
  id: z.string().min(1).describe('adapter id (Hugging Face) or absolute path'),
  revision: z.string().min(1).optional(),
  merge: z.boolean().default(false).describe('merge into the base weights before measuring (no adapter overhead)'),
});

export const PytorchSection = z.strictObject({
  device_map: z.union([z.string(), z.record(z.string(), z.union([z.string(), z.number()]))]).optional().describe('accelerate device map'),
  max_memory: z.record(z.string(), z.string()).optional().describe('per-device memory limits for the device map'),
  attn_implementation: z.enum(['eager', 'sdpa', 'flash_attention_2', 'flash_attention_3', 'flex_attention']).optional().describe('attention kernel'),
  torch_compile: z.boolean().default(false).describe('torch.compile the model'),
  static_kv_cache: z.boolean().default(false).describe('static KV cache (cache_implementation="static")'),
  use_cache: z.boolean().optional().describe('KV cache during generation'),
  num_beams: z.number().int().positive().optional().describe('beam search width (1 = no beam search)'),
  low_cpu_mem_usage: z.boolean().optional().describe('load weights without a full CPU copy'),
  assistant_model: z.string().min(1).optional().describe('assisted (speculative) decoding draft model'),
  prompt_lookup_num_tokens: z.number().int().positive().optional().describe('prompt-lookup decoding'),
  lora: z.array(LoraAdapter).optional().describe('LoRA adapters (PEFT) applied to the model'),
  profiler: z.boolean().optional().describe('torch.profiler FLOPs count in a pass outside the energy window'),
  loader: z
    .string()
    .regex(/^[A-Za-z_][\w.]*:[A-Za-z_]\w*$/, { message: "a loader is 'module:function' (a Python import path)" })
    .optional()
    .describe("load the model with this Python function ('module:function', called with the experiment) instead of transformers: a test/advanced hook"),
});
export type PytorchSection = z.infer<typeof PytorchSection>;
