/**
 * Serving scenarios: the `traffic:` section (how requests arrive) and the serving fields of the
 * `vllm:` section (which OpenAI-compatible server is measured, and how).
 *
 * Arrival processes (seeded; the worker draws them, lem_worker/serving/traffic.py):
 * - closed: `concurrency` requests in flight at all times; a new one starts when one finishes.
 * - poisson: exponential inter-arrival times at `rate_rps` (gamma with shape 1).
 * - gamma: inter-arrival times ~ Gamma(shape = burstiness, scale = 1 / (rate_rps × burstiness)), as vLLM's
 *   serving benchmark defines burstiness: 1 is Poisson, larger is more regular, smaller is burstier.
 * - constant: one request every 1 / rate_rps seconds.
 * In the open-loop processes `concurrency` (when set) caps the requests in flight, as vLLM's max-concurrency.
 * It applies to server measurements and to the offline engines that take requests one at a time
 * (the backend registry's `offlineTraffic`: vllm). Every field but `arrival` defaults inside the worker only when `traffic:` is present, so configs
 * without serving keep their ids.
 */
import { z } from 'zod';
import { backendsWhere } from '../contract/backends.js';

const posInt = z.number().int().positive();

export const ARRIVALS = ['closed', 'poisson', 'constant', 'gamma'] as const;

export const Traffic = z.strictObject({
  arrival: z.enum(ARRIVALS).default('closed').describe('closed loop at a fixed concurrency, or an open-loop arrival process'),
  rate_rps: z.number().positive().optional().describe('requests per second of the open-loop processes (a grid axis: vary traffic.rate_rps)'),
  burstiness: z.number().positive().default(1).describe('gamma shape of the inter-arrival times (1 = Poisson); only arrival: gamma'),
  concurrency: posInt.optional().describe('closed: requests in flight (default 1); open loop: the cap on requests in flight (default none)'),
  requests: posInt.optional().describe('measured requests per run (default: the prompt count, or unbounded with duration_s)'),
  duration_s: z.number().positive().optional().describe('stop sending new requests after this long (with or without requests)'),
  seed: z.number().int().min(0).default(0).describe('seed of the arrival times (open loop)'),
});
export type Traffic = z.infer<typeof Traffic>;

/** Cross-field rules of a traffic section; each issue names its field under `traffic`. */
export function trafficRules(t: Traffic, ctx: z.RefinementCtx): void {
  const at = (field: string): (string | number)[] => ['traffic', field];
  if (t.arrival !== 'closed' && t.rate_rps === undefined) {
    ctx.addIssue({ code: 'custom', path: at('rate_rps'), message: `arrival ${t.arrival} is open loop: set traffic.rate_rps (requests per second)` });
  }
  if (t.arrival === 'closed' && t.rate_rps !== undefined) {
    ctx.addIssue({ code: 'custom', path: at('rate_rps'), message: 'arrival closed sends a new request when one finishes: rate_rps applies only to poisson, constant and gamma' });
  }
  if (t.arrival !== 'gamma' && t.burstiness !== 1) {
    ctx.addIssue({ code: 'custom', path: at('burstiness'), message: `burstiness shapes gamma inter-arrival times; arrival ${t.arrival} has none (use arrival: gamma)` });
  }
}

const Ms = z.number().positive();

/** Serving fields of the vllm section (all optional: an offline config is unchanged). */
export const VLLM_SERVING_FIELDS = {
  endpoint: z
    .url({ protocol: /^https?$/, error: 'vllm.endpoint must be an http:// or https:// URL, e.g. http://127.0.0.1:8000/v1' })
    .optional()
    .describe('measure this OpenAI-compatible server (vLLM, SGLang, TGI, llama.cpp, Ollama) over HTTP; also from VLLM_ENDPOINT'),
  mode: z
    .enum(['offline', 'server'])
    .optional()
    .describe('offline (default): vllm.LLM in the worker, or the endpoint when one is given; server: lem starts `vllm serve` itself and measures it over HTTP'),
  api: z.enum(['chat', 'completions']).optional().describe('which streaming API: /v1/chat/completions (default) or /v1/completions'),
  goodput: z
    .strictObject({
      ttft_ms: Ms.optional(),
      tpot_ms: Ms.optional(),
      e2el_ms: Ms.optional(),
    })
    .optional()
    .describe('latency targets: goodput counts only requests meeting every target given (as vLLM bench serve --goodput)'),
  scrape_metrics: z.boolean().optional().describe("scrape the server's Prometheus /metrics before and after the steady window into the result"),
  server_start_timeout_s: z.number().positive().optional().describe('vllm.mode server: how long to wait for `vllm serve` to become ready (default 900)'),
  request_timeout_s: z.number().positive().optional().describe('serving: socket timeout of one streamed request (default 600)'),
};

/** True when a vllm section asks for an HTTP measurement (an endpoint or the managed server). */
export function isServing(v: { endpoint?: string | undefined; mode?: string | undefined } | undefined): boolean {
  return v !== undefined && (v.endpoint !== undefined || v.mode === 'server');
}

/** Backends whose offline engine takes a `traffic:` section (per-request submission; the backend registry says which). */
export const OFFLINE_TRAFFIC_BACKENDS: readonly string[] = backendsWhere((spec) => spec.offlineTraffic);

/**
 * Rules across traffic and the serving fields; `cfg` is a parsed experiment (any backend). `traffic:`
 * applies to server measurements and to the offline engines that take requests one at a time (vllm:
 * LLMEngine.add_request + step); a backend that runs its prompt set in batches refuses it.
 */
export function servingRules(cfg: { backend: string; traffic?: Traffic | undefined; vllm?: { endpoint?: string | undefined; mode?: string | undefined } }, ctx: z.RefinementCtx): void {
  if (cfg.traffic === undefined) return;
  trafficRules(cfg.traffic, ctx);
  if (OFFLINE_TRAFFIC_BACKENDS.includes(cfg.backend)) return;
  ctx.addIssue({
    code: 'custom',
    path: ['traffic'],
    message:
      `backend ${cfg.backend} runs its prompt set in batches and cannot submit requests at arrival times: traffic applies to ` +
      `backend ${OFFLINE_TRAFFIC_BACKENDS.join(', ')} (offline engine, or a server with vllm.endpoint / vllm.mode: server); remove traffic or change the backend`,
  });
}
