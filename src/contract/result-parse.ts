/**
 * Reading a result: validating a decoded result.json (v3, or v1 migrated to v3) against the
 * schemas in result.ts, and the JSON Schema export of the newest shape.
 */
import { z } from 'zod';
import { EnvironmentV3, Result, ResultV1, ResultV3 } from './result.js';

export type ParsedResult = { ok: true; result: Result } | { ok: false; reason: string };

/**
 * Migration v1 -> v3 (also documented in images/worker/RESULTS.md):
 * - identity fields, timestamps, metrics, unmeasured, environment: copied unchanged.
 * - energy.gpu/cpu/dram: copied; they become the raw readings. energy.raw mirrors them;
 *   raw.total_j = sum of the measured domains (null when none), total_domains lists them.
 *   energy.method = "v1: not recorded"; window_s = metrics.duration_s when present, else null.
 * - no v1 worker measured an idle baseline: energy.baseline = null, energy.adjusted all null;
 *   metrics gain energy_<d>_raw_j (= energy_<d>_j) and, for every domain and the total,
 *   energy_<d>_adjusted_j = null with unmeasured reason "migrated from schema v1: no idle baseline".
 *   Existing metric values are never changed or overwritten.
 * - per_gpu = [], cross_check = null, timeline = null, warmup = null, phases = null,
 *   window = {duration_s: metrics.duration_s ?? null, min_s: null, repetitions: null, short: null}.
 * - validation = {passed: true, flags: [], checked: [], skipped: {all: "migrated from schema v1: not validated"}}:
 *   v1 had no gates, so nothing was checked (passed means "no gate failed", not "validated").
 * - workload = {}, migrated_from = 1, and a note is appended.
 */
export function migrateV1(v1: ResultV1): ResultV3 {
  const domains = ['gpu', 'cpu', 'dram'] as const;
  const metrics: Record<string, number | null> = { ...v1.metrics };
  const unmeasured: Record<string, string> = { ...v1.unmeasured };
  const noBaseline = 'migrated from schema v1: no idle baseline';
  const measured = domains.filter((d) => v1.energy[d].joules !== null);
  const total = measured.length ? measured.reduce((s, d) => s + (v1.energy[d].joules ?? 0), 0) : null;
  for (const d of domains) {
    const raw = `energy_${d}_raw_j`;
    if (!(raw in metrics)) {
      metrics[raw] = v1.energy[d].joules;
      if (v1.energy[d].joules === null) unmeasured[raw] = v1.energy[d].reason ?? 'not measured';
    }
    const adj = `energy_${d}_adjusted_j`;
    if (!(adj in metrics)) {
      metrics[adj] = null;
      unmeasured[adj] = noBaseline;
    }
  }
  if (!('energy_total_adjusted_j' in metrics)) {
    metrics.energy_total_adjusted_j = null;
    unmeasured.energy_total_adjusted_j = noBaseline;
  }
  const duration = typeof v1.metrics.duration_s === 'number' ? v1.metrics.duration_s : null;
  return {
    schema_version: 3,
    run_id: v1.run_id,
    experiment_id: v1.experiment_id,
    cycle: v1.cycle,
    attempt: v1.attempt,
    backend: v1.backend,
    started_at: v1.started_at,
    ended_at: v1.ended_at,
    metrics,
    unmeasured,
    energy: {
      gpu: v1.energy.gpu,
      cpu: v1.energy.cpu,
      dram: v1.energy.dram,
      window_s: duration,
      method: 'v1: not recorded',
      total_domains: measured,
      raw: { gpu_j: v1.energy.gpu.joules, cpu_j: v1.energy.cpu.joules, dram_j: v1.energy.dram.joules, total_j: total },
      adjusted: { gpu_j: null, cpu_j: null, dram_j: null, total_j: null, method: noBaseline },
      baseline: null,
      per_gpu: [],
      cross_check: null,
    },
    timeline: null,
    warmup: null,
    window: { duration_s: duration, min_s: null, repetitions: null, short: null },
    phases: null,
    validation: { passed: true, flags: [], checked: [], skipped: { all: 'migrated from schema v1: not validated' } },
    workload: {},
    environment: v1Environment(v1.environment),
    notes: [...v1.notes, 'migrated from result schema v1 to v3 on ingest'],
    migrated_from: 1,
  };
}

/** A v1 environment as v3 (v1 never wrote the typed machine-state keys; anything odd is kept under `v1`). */
function v1Environment(env: Record<string, unknown>): z.infer<typeof EnvironmentV3> {
  const parsed = EnvironmentV3.safeParse(env);
  return parsed.success ? parsed.data : { v1: env };
}

function issues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`)
    .join('; ');
}

function checkNullMetrics(r: Result): string | null {
  for (const [name, value] of Object.entries(r.metrics)) {
    if (value === null && !(name in r.unmeasured)) {
      return `metric ${name} is null but unmeasured.${name} gives no reason`;
    }
  }
  return null;
}

/** Validates a decoded result file (v3, or v1 migrated to v3); never throws. */
export function parseResult(data: unknown): ParsedResult {
  const version = typeof data === 'object' && data !== null ? (data as { schema_version?: unknown }).schema_version : undefined;
  let r: Result;
  if (version === 1) {
    const parsed = ResultV1.safeParse(data);
    if (!parsed.success) return { ok: false, reason: `result does not match schema v1: ${issues(parsed.error)}` };
    const bad = checkNullMetrics(parsed.data as unknown as Result);
    if (bad) return { ok: false, reason: bad };
    r = migrateV1(parsed.data);
  } else if (version === 3) {
    const parsed = ResultV3.safeParse(data);
    if (!parsed.success) return { ok: false, reason: `result does not match schema v3: ${issues(parsed.error)}` };
    r = parsed.data;
  } else {
    return { ok: false, reason: `unsupported result schema_version ${JSON.stringify(version ?? null)} (expected 3, or 1 to migrate)` };
  }
  const bad = checkNullMetrics(r);
  if (bad) return { ok: false, reason: bad };
  return { ok: true, result: r };
}

export function resultJsonSchema(): unknown {
  return z.toJSONSchema(Result, { target: 'draft-2020-12', io: 'input' });
}
