/**
 * The result contract between the in-container worker (Python, images/worker) and the orchestrator.
 *
 * The worker writes exactly one `result.json` per run. The orchestrator validates it with
 * `parseResult` (result-parse.ts) on ingest: a file that does not validate is a failed run with the reason,
 * never half-recorded. `npm run build` also exports this schema as JSON Schema
 * (schemas/result.schema.json) for other tools.
 *
 * Versions: the worker writes schema v3 (ResultV3). v1 files (written by the first worker) are
 * still accepted: `parseResult` migrates them to v3 (see `migrateV1` below and
 * images/worker/RESULTS.md). v2 was never released.
 *
 * v3 keeps v1's flat `metrics` record of unit-suffixed numbers (aggregation reads it) and its
 * `unmeasured` reasons, and adds structured blocks: energy (raw / idle baseline / adjusted /
 * per-GPU / cross-check), timeline, warmup, window, phases, validation, workload.
 */
import { z } from 'zod';
import { BackendName } from './backends.js';
import { ServingBlock } from './serving-schema.js';

export { BACKENDS, BackendName } from './backends.js';

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

const Metrics = z
  .record(z.string(), z.number().finite().nullable())
  .describe('flat numeric metrics, named with their unit as suffix (e.g. ops_per_s, energy_total_j)');
const Unmeasured = z.record(z.string(), z.string()).describe('for every metric that is null: why it was not measured');
const Iso = z.string().min(1).describe('ISO-8601 UTC');
const num = z.number().finite();
const nnum = num.nullable();

/** Fields every schema version has: the run's identity, its times and the flat metrics. */
const RunIdentity = {
  run_id: z.string().min(1),
  experiment_id: z.string().min(1),
  cycle: z.number().int().positive(),
  attempt: z.number().int().positive(),
  backend: BackendName,
  started_at: Iso,
  ended_at: Iso,
  metrics: Metrics,
  unmeasured: Unmeasured,
};

export const ResultV1 = z.object({
  schema_version: z.literal(1),
  ...RunIdentity,
  energy: z.object({
    gpu: EnergyReading,
    cpu: EnergyReading,
    dram: EnergyReading,
  }),
  environment: z.record(z.string(), z.unknown()),
  notes: z.array(z.string()),
});
export type ResultV1 = z.infer<typeof ResultV1>;

/** Per-domain joules (null: not measured / not computable). */
const DomainJoules = z.object({ gpu_j: nnum, cpu_j: nnum, dram_j: nnum, total_j: nnum });

/** One idle-baseline step of measurement.idle_baseline_s: the first, or an extension. */
const BaselineStep = z.object({
  start_s: num.describe('seconds since the meter started'),
  duration_s: num,
  gpu_power_w: nnum,
  cpu_power_w: nnum,
  power_cv: nnum,
  power_drift: nnum,
  samples: z.number().int().nonnegative(),
  stable: z.boolean().nullable(),
  reason: z.string().nullable(),
});

/**
 * The idle baseline's stability gate (`baseline_unstable`); optional: results written before the
 * gate existed lack these fields. The figures describe the last step (whose power is the baseline).
 */
const BaselineStability = {
  stable: z.boolean().nullable().optional().describe('null: not judged (see stability_reason)'),
  stability_reason: z.string().nullable().optional().describe('why unstable, or why not judged; null when stable'),
  stability_source: z.string().nullable().optional().describe('the power series judged: "gpu <uuid>" (least stable GPU) or "rapl cpu package"'),
  samples: z.number().int().nonnegative().nullable().optional(),
  power_cv: nnum.optional().describe('population std / mean of the sampled power'),
  power_drift: nnum.optional().describe('least-squares slope x window / mean (signed)'),
  cv_max: nnum.optional().describe('measurement.baseline_max_cv'),
  drift_max: nnum.optional().describe('measurement.baseline_max_drift'),
  temp_start_c: nnum.optional(),
  temp_end_c: nnum.optional(),
  temp_mean_c: nnum.optional(),
  extensions: z.number().int().nonnegative().optional().describe('steps measured after the first'),
  total_s: nnum.optional().describe('all steps, discarded ones included'),
  max_s: nnum.optional().describe('measurement.idle_baseline_max_s (at least idle_baseline_s)'),
  steps: z.array(BaselineStep).optional(),
};

export const EnergyBlockV3 = z.object({
  /** Raw energy over the steady window, per domain (same shape as v1). */
  gpu: EnergyReading,
  cpu: EnergyReading,
  dram: EnergyReading,
  window_s: nnum.describe('duration of the window the energies cover'),
  method: z.string().describe('how the window energy was taken'),
  total_domains: z.array(z.enum(['gpu', 'cpu', 'dram'])).describe('domains summed into total_j'),
  raw: DomainJoules,
  adjusted: DomainJoules.extend({ method: z.string() }).describe('raw minus idle-baseline power x window, floored at 0'),
  baseline: z
    .object({
      duration_s: num,
      gpu_power_w: nnum,
      cpu_power_w: nnum,
      dram_power_w: nnum,
      when: z.string(),
      reason: z.string().nullable(),
      ...BaselineStability,
    })
    .nullable()
    .describe('idle baseline measured before the window; null when measurement.idle_baseline_s is 0'),
  per_gpu: z.array(
    z.looseObject({
      uuid: z.string(),
      name: z.string().optional(),
      logical_index: z.number().int().nullable().optional(),
      method: z.string(),
      joules: nnum,
      counter_start_mj: nnum.optional(),
      counter_end_mj: nnum.optional(),
      integrated_j: nnum.optional(),
    }),
  ),
  cross_check: z
    .object({
      counter_j: nnum,
      integrated_j: nnum,
      rel_diff: nnum,
      threshold: num,
      agreed: z.boolean().nullable(),
      reason: z.string().nullable(),
    })
    .nullable()
    .describe('NVML counter energy vs the integral of sampled power over the same window'),
});

export const TimelineV3 = z
  .object({
    interval_ms: num,
    update_period_ms: nnum,
    power_source: z.string(),
    gpus: z.array(
      z.object({
        uuid: z.string(),
        logical_index: z.number().int().nullable(),
        t_s: z.array(num),
        power_instant_w: z.array(nnum),
        power_avg_w: z.array(nnum),
        temp_c: z.array(nnum),
        sm_clock_mhz: z.array(nnum),
        mem_used_mib: z.array(nnum),
        clock_reasons: z.array(z.number().int().nullable()),
        bucket_size: z.number().int().positive(),
      }),
    ),
    phases: z.array(z.object({ name: z.string(), start_s: num, end_s: num })),
  })
  .nullable();

export const WarmupV3 = z
  .object({
    mode: z.enum(['fixed', 'cv']),
    iterations: z.number().int().nonnegative(),
    converged: z.boolean().nullable(),
    cv: nnum,
    cv_threshold: nnum,
    window: z.number().int(),
    max_iterations: z.number().int().nullable(),
    durations_s: z.array(num),
  })
  .nullable();

export const ValidationFlag = z.object({
  gate: z.string().min(1),
  severity: z.enum(['fail', 'warn']),
  detail: z.string(),
});

export const ValidationV3 = z.object({
  passed: z.boolean().describe('false when any flag has severity fail; the run is kept and marked'),
  flags: z.array(ValidationFlag),
  checked: z.array(z.string()).describe('gates evaluated'),
  skipped: z.record(z.string(), z.string()).describe('gates not evaluated, with the reason'),
});

/** Field name -> why it is null. */
const Unavailable = z.record(z.string(), z.string());

/** Per-GPU machine state (NVML), read when the meter starts; optional: older results lack it. */
const GpuEnvironment = z.looseObject({
  performance_state: z.string().nullable().optional().describe('"P0".."P15" (nvmlDeviceGetPerformanceState)'),
  applications_clock_sm_mhz: nnum.optional(),
  applications_clock_mem_mhz: nnum.optional(),
  default_applications_clock_sm_mhz: nnum.optional(),
  default_applications_clock_mem_mhz: nnum.optional(),
  locked_clocks: z.null().optional().describe('NVML has no read-back for locked clocks: always null, with the reason'),
  clock_event_reasons: z.number().int().nullable().optional().describe('clock-event reasons bitmask when read'),
  ecc_mode_current: z.boolean().nullable().optional(),
  ecc_mode_pending: z.boolean().nullable().optional(),
  unavailable: Unavailable.optional().describe('for every null machine-state field: why'),
});

/**
 * Host and runtime facts. Loose: the worker records more than is typed here; the machine-state
 * fields are typed and optional (older results lack them).
 */
export const EnvironmentV3 = z.looseObject({
  cpu_governor: z.string().nullable().optional().describe('cpufreq scaling_governor when every CPU has the same'),
  cpu_scaling_driver: z.string().nullable().optional(),
  cpu_governor_by_cpu: z.record(z.string(), z.string()).nullable().optional().describe('value -> CPU list, e.g. {"performance": "0-3"}'),
  cpu_scaling_driver_by_cpu: z.record(z.string(), z.string()).nullable().optional(),
  unavailable: Unavailable.optional().describe('for every null machine-state field: why'),
  nvml: z
    .looseObject({ gpus: z.array(GpuEnvironment).optional(), read_at: z.string().optional() })
    .nullable()
    .optional(),
});

export const PhaseV3 = z.object({
  energy_j: nnum,
  duration_s: nnum,
  method: z.string(),
  reason: z.string().nullable(),
});

/** The worker's exclusive lock on the devices it measured (one measurement per device at a time). */
export const DeviceLockV3 = z
  .looseObject({
    devices: z.array(z.string().min(1)).describe('GPU UUIDs, or `cpu` for the whole host'),
    waited_s: num.nonnegative().describe('how long the worker waited for another measurement to release them'),
    waited_for: z.record(z.string(), z.unknown()).nullable().describe('who held the lock when it started waiting (campaign, run, pid, host, since); null when it did not wait'),
  })
  .nullable();

export const EngineUseV3 = z
  .looseObject({
    worker: z.enum(['persistent', 'per_run']).describe('a long-lived `lem_worker serve` process, or a process for this run alone'),
    worker_pid: z.number().int().describe('the worker process that ran it'),
    worker_runs: z.number().int().positive().describe('runs this worker process has served, this one included'),
    cold_start: z.boolean().describe('force_cold_start: a fresh worker process and a fresh load for this run'),
    key: z.string().describe('the engine configuration (backend, model + revision, dtype, quantisation, engine arguments) as JSON'),
    loaded_for_run: z.boolean().describe('the engine was loaded for this run (false: reused from an earlier run of the same worker)'),
    reuse_count: z.number().int().nonnegative().describe('runs before this one that used this loaded engine (0 when loaded for this run)'),
    load_s: nnum.describe('seconds to load the engine; null when reused'),
    load_s_reason: z.string().nullable(),
    worker_start_s: nnum.describe('cold start: seconds from the worker process start to ready; null otherwise'),
    first_request_s: nnum.optional().describe('after a load: seconds of the first request (the first warm-up iteration); null with first_request_reason otherwise'),
    first_request_reason: z.string().nullable().optional(),
    load_energy_j: nnum.optional().describe('energy of the engine load; not measured yet (load_energy_reason)'),
    load_energy_reason: z.string().nullable().optional(),
  })
  .describe('how this run got its engine (persistent worker, engine cache); absent in older results');

export const ResultV3 = z.object({
  schema_version: z.literal(3),
  ...RunIdentity,
  energy: EnergyBlockV3,
  timeline: TimelineV3,
  warmup: WarmupV3,
  window: z
    .looseObject({
      duration_s: nnum,
      min_s: nnum,
      repetitions: z.number().int().nonnegative().nullable(),
      short: z.boolean().nullable(),
      started_at: Iso.optional().describe('wall-clock start of the measured window'),
      ended_at: Iso.optional().describe('wall-clock end of the last measured window (steady, then prefill)'),
    })
    .nullable(),
  phases: z
    .object({ prefill: PhaseV3, decode: PhaseV3, method: z.string() })
    .nullable()
    .describe('prefill from a 1-new-token pass; decode = full - prefill'),
  validation: ValidationV3,
  workload: z.record(z.string(), z.unknown()),
  environment: EnvironmentV3,
  notes: z.array(z.string()),
  device_lock: DeviceLockV3.optional().describe('the device lock the worker held over baseline, warm-up and windows; absent in older results'),
  engine: EngineUseV3.optional(),
  serving: ServingBlock.optional().describe('measurements under traffic: a served model over HTTP (vllm.endpoint / vllm.mode server) or the offline vllm engine with a traffic section; absent otherwise'),
  migrated_from: z.literal(1).optional().describe('set when parseResult migrated a v1 file'),
});
export type ResultV3 = z.infer<typeof ResultV3>;

/** The newest result shape; ingest always hands this to the rest of the orchestrator. */
export const Result = ResultV3;
export type Result = z.infer<typeof Result>;
