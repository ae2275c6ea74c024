/**
 * Preflight: before a campaign row is written or any container starts, ask where each backend's
 * runs will run (Runtime.probe: the local interpreter, or a throwaway container of the backend's
 * image) whether it exists and what its worker reports for these configs: the Python packages they
 * need (installed or not) and the GPUs it sees. Every problem is collected, so a failed preflight
 * names them all at once (PreflightError, exit 2); nothing is recorded or started.
 */
import { z } from 'zod';
import type { BackendName } from '../contract/backends.js';
import type { ExperimentConfig } from '../config/experiment.js';
import type { Runtime } from '../runtime/types.js';
import { EXIT_USAGE, LemError } from '../util/errors.js';

/** The worker's `probe --json` document (lem.probe/1); unknown keys are kept for newer workers. */
export const ProbeReport = z
  .object({
    schema: z.literal('lem.probe/1'),
    worker_version: z.string().optional(),
    python_version: z.string().optional(),
    packages: z.record(z.string(), z.string().nullable()),
    missing: z.array(z.object({ package: z.string(), needed_by: z.array(z.string()) })),
    gpus: z.object({
      count: z.number().int().min(0),
      devices: z.array(z.object({ index: z.number().int(), name: z.string(), uuid: z.string().nullable() }).passthrough()),
      reason: z.string().nullable(),
    }),
  })
  .passthrough();
export type ProbeReport = z.infer<typeof ProbeReport>;

export interface PreflightProblem {
  backend: string;
  /** The image or interpreter asked. */
  where: string;
  message: string;
  /** The command or step that fixes it, when there is one. */
  fix: string | null;
}

export interface BackendPreflight {
  backend: string;
  where: string;
  ok: boolean;
  /** Needed packages → installed version (null: missing); null when the worker could not be asked. */
  packages: Record<string, string | null> | null;
  /** GPUs the worker sees there; null when it could not be asked. */
  gpus: { count: number; names: string[]; reason: string | null } | null;
}

export interface PreflightReport {
  ok: boolean;
  /** False when the runtime cannot be probed (nothing was checked). */
  checked: boolean;
  backends: BackendPreflight[];
  problems: PreflightProblem[];
  /** What could not be checked and why (an older worker); not problems. */
  notes: string[];
}

/** A failed preflight: every problem in one message, exit 2. */
export class PreflightError extends LemError {
  constructor(readonly report: PreflightReport) {
    super(
      `preflight failed: ${report.problems.length} problem(s); nothing was recorded or started:\n${report.problems
        .map((p) => `  - ${p.backend}: ${p.message}${p.fix ? `\n      fix: ${p.fix}` : ''}`)
        .join('\n')}`,
      EXIT_USAGE,
    );
    this.name = 'PreflightError';
  }
}

export interface PreflightExperiment {
  backend: BackendName;
  config: ExperimentConfig;
}

function gpuProblems(backend: string, where: string, configs: readonly ExperimentConfig[], gpus: ProbeReport['gpus']): PreflightProblem[] {
  const out: PreflightProblem[] = [];
  const seen = gpus.count === 0 ? `sees no GPU${gpus.reason ? ` (${gpus.reason})` : ''}` : `sees ${gpus.count} GPU(s)`;
  const asked = Math.max(-1, ...configs.flatMap((c) => c.measurement.gpu_ids ?? []));
  if (asked >= gpus.count) {
    out.push({ backend, where, message: `measurement.gpu_ids asks for GPU ${asked}, but the worker in ${where} ${seen}`, fix: 'check the GPUs given to the engine/service (compose deploy.resources, NVIDIA Container Toolkit) or the gpu_ids' });
  }
  if (gpus.count === 0 && configs.some((c) => c.backend === 'calibration' && c.calibration?.device === 'cuda')) {
    out.push({ backend, where, message: `calibration.device is cuda, but the worker in ${where} ${seen}`, fix: 'give the service a GPU, or use calibration.device: cpu' });
  }
  return out;
}

/** Probes every backend the experiments use; never throws for what it finds (see PreflightError). */
export async function preflight(runtime: Runtime, experiments: readonly PreflightExperiment[]): Promise<PreflightReport> {
  const byBackend = new Map<BackendName, Map<string, ExperimentConfig>>();
  for (const e of experiments) {
    const m = byBackend.get(e.backend) ?? new Map<string, ExperimentConfig>();
    m.set(JSON.stringify(e.config), e.config);
    byBackend.set(e.backend, m);
  }
  const report: PreflightReport = { ok: true, checked: runtime.probe !== undefined, backends: [], problems: [], notes: [] };
  if (!runtime.probe) return report;
  for (const [backend, distinct] of byBackend) {
    const configs = [...distinct.values()];
    let outcome: Awaited<ReturnType<NonNullable<Runtime['probe']>>>;
    try {
      outcome = await runtime.probe(backend, configs);
    } catch (err) {
      outcome = { ok: false, where: `the ${runtime.name} runtime`, problem: err instanceof Error ? err.message : String(err), fix: null };
    }
    if (!outcome.ok) {
      report.problems.push({ backend, where: outcome.where, message: outcome.problem, fix: outcome.fix });
      report.backends.push({ backend, where: outcome.where, ok: false, packages: null, gpus: null });
      continue;
    }
    if (outcome.report === null) {
      report.notes.push(outcome.note ?? `the worker in ${outcome.where} was not asked`);
      report.backends.push({ backend, where: outcome.where, ok: true, packages: null, gpus: null });
      continue;
    }
    const parsed = ProbeReport.safeParse(outcome.report);
    if (!parsed.success) {
      const first = parsed.error.issues[0];
      report.problems.push({
        backend,
        where: outcome.where,
        message: `the worker in ${outcome.where} answered the probe with an unexpected document (${first ? `${first.path.join('.')}: ${first.message}` : 'invalid'}); it is older or newer than this lem`,
        fix: runtime.name === 'docker' ? `lem images build ${backend}` : null,
      });
      report.backends.push({ backend, where: outcome.where, ok: false, packages: null, gpus: null });
      continue;
    }
    const r = parsed.data;
    const problems = [
      ...r.missing.map((m) => ({
        backend,
        where: outcome.where,
        message: `Python package ${m.package} is not installed in ${outcome.where} (needed by ${m.needed_by.join(', ')})`,
        fix: runtime.name === 'docker' ? `use an image that has it (lem images build ${backend})` : `install it for that interpreter (python3 -m pip install ${m.package}), or set LEM_PYTHON`,
      })),
      ...gpuProblems(backend, outcome.where, configs, r.gpus),
    ];
    report.problems.push(...problems);
    report.backends.push({
      backend,
      where: outcome.where,
      ok: problems.length === 0,
      packages: r.packages,
      gpus: { count: r.gpus.count, names: r.gpus.devices.map((d) => d.name), reason: r.gpus.reason },
    });
  }
  report.ok = report.problems.length === 0;
  return report;
}
