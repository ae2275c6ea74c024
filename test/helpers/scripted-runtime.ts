/**
 * A scripted Runtime for runner tests that need failures on demand (exit codes, bad result files,
 * hangs). It is a test double of the runtime seam, not of Docker or a GPU: the real local and
 * docker runtimes are exercised by the e2e tests.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DispatchOutcome, LiveWorker, Runtime, RunSpec } from '../../src/runtime/types.js';

/** A worker failure as the real worker reports it: its exit code, and failure.json when `kind` is given. */
export interface ScriptedFailure {
  exit: number;
  kind?: string;
  message?: string;
}

export type Script = (spec: RunSpec) => 'ok' | 'exit1' | 'bad-result' | 'hang' | ScriptedFailure;

/** A schema-v1 result for a run, as the foundation worker writes it. */
export function v1Result(spec: RunSpec, metrics: Record<string, number | null> = { flops_per_s: 1e9, duration_s: 1 }): unknown {
  const unmeasured: Record<string, string> = {};
  for (const [k, v] of Object.entries(metrics)) if (v === null) unmeasured[k] = 'not measured in this test';
  return {
    schema_version: 1,
    run_id: spec.runId,
    experiment_id: spec.experimentId,
    cycle: spec.cycle,
    attempt: spec.attempt,
    backend: spec.backend,
    started_at: '2026-01-01T00:00:00Z',
    ended_at: '2026-01-01T00:00:01Z',
    metrics,
    unmeasured,
    energy: {
      gpu: { joules: null, source: null, reason: 'no GPU in test' },
      cpu: { joules: null, source: null, reason: 'no RAPL in test' },
      dram: { joules: null, source: null, reason: 'no RAPL in test' },
    },
    environment: {},
    notes: [],
  };
}

export interface ScriptedRuntime extends Runtime {
  dispatched: RunSpec[];
  prepared: string[][];
  shutdowns: number;
  /** Workers the test pretends were left running (by token); stopWorkers empties it. */
  live: LiveWorker[];
  /** Calls in order: 'stopWorkers' and 'dispatch <token>' (to check stop-before-dispatch). */
  calls: string[];
}

export function scriptedRuntime(script: Script): ScriptedRuntime {
  const rt: ScriptedRuntime = {
    name: 'local',
    dispatched: [],
    prepared: [],
    shutdowns: 0,
    live: [],
    calls: [],
    async findWorkers(campaignId) {
      return rt.live.filter((w) => w.token.startsWith(`lem-${campaignId}-`));
    },
    async stopWorkers(campaignId) {
      rt.calls.push('stopWorkers');
      const mine = rt.live.filter((w) => w.token.startsWith(`lem-${campaignId}-`));
      rt.live = rt.live.filter((w) => !mine.includes(w));
      return mine;
    },
    async prepare(backends) {
      rt.prepared.push([...backends]);
    },
    async dispatch(spec, signal, onStarted): Promise<DispatchOutcome> {
      rt.dispatched.push(spec);
      rt.calls.push(`dispatch ${spec.attemptToken}`);
      onStarted(`scripted:${spec.runId}:${spec.attempt}`);
      const what = script(spec);
      writeFileSync(spec.logPath, `scripted ${typeof what === 'string' ? what : JSON.stringify(what)}\n`);
      if (typeof what === 'object') {
        if (what.kind) {
          const doc = { schema: 'lem.failure/1', kind: what.kind, exit_code: what.exit, message: what.message ?? `scripted ${what.kind}`, detail: {} };
          writeFileSync(join(spec.outDir, 'failure.json'), JSON.stringify(doc));
        }
        return { exitCode: what.exit, timedOut: false, failureReason: null };
      }
      if (what === 'hang') {
        await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
        return { exitCode: null, timedOut: false, failureReason: 'interrupted' };
      }
      if (what === 'exit1') return { exitCode: 1, timedOut: false, failureReason: null };
      const body = what === 'bad-result' ? { schema_version: 1, run_id: spec.runId } : v1Result(spec, { flops_per_s: 1e9 + spec.cycle, duration_s: 1 });
      writeFileSync(join(spec.outDir, 'result.json'), JSON.stringify(body));
      return { exitCode: 0, timedOut: false, failureReason: null };
    },
    async reap() {},
    async shutdown() {
      rt.shutdowns++;
    },
  };
  return rt;
}
