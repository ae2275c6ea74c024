/**
 * The result contract between the in-container worker (Python, images/worker) and the orchestrator.
 *
 * The worker writes exactly one `result.json` per run. The orchestrator validates it with
 * `parseResult` on ingest: a file that does not validate is a failed run with the reason,
 * never half-recorded. `npm run build` also exports this schema as JSON Schema
 * (schemas/result.schema.json) for other tools.
 */
import { z } from 'zod';

export const BACKENDS = ['pytorch', 'vllm', 'tensorrt', 'calibration'] as const;
export const BackendName = z.enum(BACKENDS);
export type BackendName = z.infer<typeof BackendName>;

/** One energy domain. `joules` is null when the host could not measure it; `reason` says why. */
export const EnergyReading = z
  .object({
    joules: z.number().nonnegative().nullable(),
    source: z.string().nullable().describe('how it was measured, e.g. nvml_total_energy, rapl'),
    reason: z.string().nullable().describe('why joules is null; null when measured'),
  })
  .refine((r) => (r.joules === null) === (r.reason !== null), {
    message: 'an energy reading must have either joules (measured) or a reason (not measured), not both or neither',
  });
export type EnergyReading = z.infer<typeof EnergyReading>;

export const ResultV1 = z.object({
  schema_version: z.literal(1),
  run_id: z.string().min(1),
  experiment_id: z.string().min(1),
  cycle: z.number().int().positive(),
  attempt: z.number().int().positive(),
  backend: BackendName,
  started_at: z.string().min(1).describe('ISO-8601 UTC'),
  ended_at: z.string().min(1).describe('ISO-8601 UTC'),
  /** Flat numeric metrics, named with their unit as suffix (e.g. `ops_per_s`, `energy_total_j`). */
  metrics: z.record(z.string(), z.number().finite().nullable()),
  /** For every metric that is null: why it was not measured. */
  unmeasured: z.record(z.string(), z.string()),
  energy: z.object({
    gpu: EnergyReading,
    cpu: EnergyReading,
    dram: EnergyReading,
  }),
  environment: z.record(z.string(), z.unknown()),
  notes: z.array(z.string()),
});
export type ResultV1 = z.infer<typeof ResultV1>;

/** The newest result shape; ingest always hands this to the rest of the orchestrator. */
export const Result = ResultV1;
export type Result = z.infer<typeof Result>;

export type ParsedResult = { ok: true; result: Result } | { ok: false; reason: string };

/** Validates a decoded result file; never throws. */
export function parseResult(data: unknown): ParsedResult {
  const parsed = Result.safeParse(data);
  if (!parsed.success) {
    const first = parsed.error.issues
      .slice(0, 5)
      .map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`)
      .join('; ');
    return { ok: false, reason: `result does not match schema v1: ${first}` };
  }
  const r = parsed.data;
  for (const [name, value] of Object.entries(r.metrics)) {
    if (value === null && !(name in r.unmeasured)) {
      return { ok: false, reason: `metric ${name} is null but unmeasured.${name} gives no reason` };
    }
  }
  return { ok: true, result: r };
}

export function resultJsonSchema(): unknown {
  return z.toJSONSchema(Result, { target: 'draft-2020-12', io: 'input' });
}
