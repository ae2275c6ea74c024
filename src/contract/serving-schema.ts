/**
 * The `serving` block of a result (worker: images/worker/lem_worker/serving/run.py): a served model
 * measured over HTTP under seeded traffic, or the offline vLLM engine fed the same traffic request by
 * request (images/worker/lem_worker/backends/vllm_traffic.py, `api: engine`). Latencies in seconds; every distribution has mean and
 * p50/p90/p95/p99 (null when nothing was measured) and its sample count.
 */
import { z } from 'zod';

const nnum = z.number().finite().nullable();

export const LatencyDistribution = z.looseObject({
  mean: nnum,
  p50: nnum,
  p90: nnum,
  p95: nnum,
  p99: nnum,
  count: z.number().int().nonnegative(),
});

export const ServingBlock = z.looseObject({
  endpoint: z.string().min(1).describe('the API base URL measured (e.g. http://127.0.0.1:8000/v1); offline: the in-process engine (vllm.LLMEngine)'),
  api: z.enum(['chat', 'completions', 'engine']).describe('engine: requests submitted to the offline engine (add_request + step), no HTTP'),
  server: z.record(z.string(), z.unknown()).describe('health, served models; for vllm.mode server: pid, command, reused'),
  traffic: z.looseObject({
    arrival: z.enum(['closed', 'poisson', 'constant', 'gamma']),
    rate_rps: nnum,
    burstiness: z.number().positive(),
    concurrency: z.number().int().positive().nullable(),
    requests: z.number().int().positive().nullable(),
    duration_s: nnum,
    seed: z.number().int().nonnegative(),
  }),
  requests_planned: z.number().int().nonnegative().nullable(),
  requests_sent: z.number().int().nonnegative(),
  requests_completed: z.number().int().nonnegative(),
  requests_failed: z.number().int().nonnegative(),
  errors: z.record(z.string(), z.number().int()).describe('failure message -> how many requests'),
  warmup_requests: z.number().int().nonnegative().describe('sent one at a time before the traffic; not measured'),
  requested_rate_rps: nnum,
  achieved_rate_rps: nnum.describe('completed requests / (last completion - traffic start)'),
  output_tokens_per_s: nnum,
  latency_s: z.looseObject({ ttft: LatencyDistribution, itl: LatencyDistribution, tpot: LatencyDistribution, e2e: LatencyDistribution }),
  goodput: z.looseObject({ good_requests: z.number().int().nonnegative(), goodput_rps: nnum }).nullable(),
  reasoning: z.looseObject({
    reasoning_chunks: z.number().int().nonnegative(),
    content_chunks: z.number().int().nonnegative(),
    reasoning_tokens: z.number().int().nonnegative().nullable(),
  }),
  steady_window: z.looseObject({
    formed: z.boolean(),
    start_s: nnum.describe('seconds from the traffic start'),
    end_s: nnum,
    duration_s: nnum,
    rule: z.string(),
    requests: z.number().nonnegative(),
    output_tokens: nnum,
  }),
  energy: z.looseObject({
    j_per_request: nnum,
    j_per_output_token: nnum,
    reason: z.string().nullable().describe('why the energy figures are null'),
    attribution: z.string(),
  }),
  server_metrics: z.record(z.string(), z.unknown()).nullable().describe("the server's Prometheus /metrics before and after the traffic (vllm.scrape_metrics)"),
});
export type ServingBlock = z.infer<typeof ServingBlock>;
