/**
 * Typed failures drive retries. Each failed attempt gets a kind — the worker's own (failure.json, or
 * its documented exit code) or the runtime's (timeout, container_gone, killed) — and the policy here
 * decides from the kind alone whether a retry can help:
 *
 *   never:        config_error, missing_dependency (the same config/image fails the same way)
 *   not retried:  out_of_memory (the same config would run out again)
 *   retried:      engine_error, lock_timeout, timeout, terminated, killed, container_gone, bad_result
 *
 * A missing_dependency or config_error before any run of a backend succeeded skips that backend's
 * remaining runs at once (they stay pending; `campaign resume` runs them once the image is fixed),
 * instead of failing them one by one.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DispatchOutcome } from '../runtime/types.js';

/** Kinds the worker reports (exit code and failure.json; images/worker/lem_worker/errors.py). */
export const WORKER_FAILURE_KINDS = ['engine_error', 'config_error', 'missing_dependency', 'out_of_memory', 'lock_timeout', 'terminated'] as const;
/** Kinds the orchestrator or runtime assigns. */
export const RUNTIME_FAILURE_KINDS = ['timeout', 'container_gone', 'killed', 'bad_result', 'interrupted', 'host_lost'] as const;
export const FAILURE_KINDS = [...WORKER_FAILURE_KINDS, ...RUNTIME_FAILURE_KINDS] as const;
export type FailureKind = (typeof FAILURE_KINDS)[number];

/** The worker's exit codes (the shared contract); 137 is SIGKILL from outside (often the OOM killer). */
export const EXIT_KINDS: Readonly<Record<number, FailureKind>> = {
  1: 'engine_error',
  2: 'config_error',
  3: 'missing_dependency',
  4: 'out_of_memory',
  75: 'lock_timeout',
  137: 'killed',
  143: 'terminated',
};

export function isFailureKind(v: unknown): v is FailureKind {
  return typeof v === 'string' && (FAILURE_KINDS as readonly string[]).includes(v);
}

export interface FailureRecord {
  kind: FailureKind;
  message: string | null;
}

/** The worker's failure.json in a run directory, when present and well formed. */
export function readFailureFile(dir: string): FailureRecord | null {
  const path = join(dir, 'failure.json');
  if (!existsSync(path)) return null;
  try {
    const doc = JSON.parse(readFileSync(path, 'utf8')) as { schema?: unknown; kind?: unknown; message?: unknown };
    if (doc.schema !== 'lem.failure/1' || !isFailureKind(doc.kind)) return null;
    return { kind: doc.kind, message: typeof doc.message === 'string' ? doc.message : null };
  } catch {
    return null;
  }
}

/**
 * The kind of a failed attempt: a timeout the runtime enforced, then what the runtime saw (the
 * container gone, a SIGKILL), then the worker's failure.json, then its exit code.
 */
export function classifyFailure(outcome: DispatchOutcome, dir: string): FailureRecord {
  if (outcome.timedOut) return { kind: 'timeout', message: outcome.failureReason };
  if (outcome.failureKind) return { kind: outcome.failureKind, message: outcome.failureReason };
  const file = readFailureFile(dir);
  if (file && (outcome.exitCode === null || EXIT_KINDS[outcome.exitCode] === file.kind)) return file;
  const byExit = outcome.exitCode === null ? undefined : EXIT_KINDS[outcome.exitCode];
  return { kind: byExit ?? 'engine_error', message: outcome.failureReason ?? file?.message ?? null };
}

export interface RetryDecision {
  retry: boolean;
  /** Why not, when a retry is left but the kind rules it out. */
  why: string | null;
}

const NEVER: Partial<Record<FailureKind, string>> = {
  config_error: 'a config error is not retried (the same config fails the same way)',
  missing_dependency: 'a missing dependency is not retried (install it in the image, then resume)',
  out_of_memory: 'out of memory is not retried with the same config',
};

/** Whether attempt `attempt` (of at most `maxAttempt`) that failed with `kind` is tried again. */
export function retryDecision(kind: FailureKind, attempt: number, maxAttempt: number): RetryDecision {
  const never = NEVER[kind];
  if (never) return { retry: false, why: attempt < maxAttempt ? never : null };
  return { retry: attempt < maxAttempt, why: null };
}

/** Skips the remaining runs of a backend whose first run failed in a way no other run of it escapes. */
export class BackendSkips {
  private readonly succeeded = new Set<string>();
  private readonly skipped = new Map<string, string>();

  succeededOn(backend: string): void {
    this.succeeded.add(backend);
  }

  /**
   * After a run's final failure: when it is a kind no other run of the backend escapes and no run of
   * the backend succeeded yet, its `left` remaining runs are skipped (once per backend); what to say.
   */
  afterFailure(backend: string, kind: FailureKind, message: string | null, left: number): { message: string; detail: Record<string, unknown> } | null {
    if (kind !== 'missing_dependency' && kind !== 'config_error') return null;
    if (this.succeeded.has(backend) || this.skipped.has(backend) || left === 0) return null;
    const reason = `${kind} on the first run of backend ${backend}${message ? ` (${message.slice(0, 300)})` : ''}`;
    this.skipped.set(backend, reason);
    return { message: `skipping the ${left} remaining run(s) of backend ${backend}: ${reason}; they stay pending`, detail: { backend, kind, runs: left, reason } };
  }

  /** Why runs of this backend are skipped, or null. */
  reason(backend: string): string | null {
    return this.skipped.get(backend) ?? null;
  }
}
