/**
 * A run's status, and the fields that belong to one attempt, are written here and nowhere else.
 *
 *   pending → running → succeeded | failed | interrupted
 *   failed | interrupted → running      (a retry, or a resume)
 *
 * A start raises the attempt (it never decreases); `succeeded` is final. Every write is one
 * immediate transaction that reads the row, checks the move against the table, updates the row
 * guarded by the status and attempt it read (exactly one row must change) and appends one event.
 * A move the table does not allow is a bug in lem: IllegalTransitionError (exit 70, a crash log).
 * One exception, by design: a result for an attempt that is no longer running (a late or second
 * outcome) is not recorded and `succeed` returns false, so a result is never recorded twice.
 * Runs enter the manifest as planned (pending) or imported (already final: the attempt ran in
 * another tool); see enterRun.
 */
import { EXIT_INTERNAL } from '../util/errors.js';
import type { Db } from './db.js';

export const RUN_STATUSES = ['pending', 'running', 'succeeded', 'failed', 'interrupted'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

/** The allowed status changes: from → the statuses it may move to. */
export const RUN_TRANSITIONS: Readonly<Record<RunStatus, readonly RunStatus[]>> = {
  pending: ['running'],
  running: ['succeeded', 'failed', 'interrupted'],
  succeeded: [],
  failed: ['running'],
  interrupted: ['running'],
};

/** The statuses a run may enter the manifest with, by where it comes from. */
export const ENTRY_STATUSES = { planned: ['pending'], imported: ['succeeded', 'failed'] } as const satisfies Record<string, readonly RunStatus[]>;

export function canTransition(from: RunStatus, to: RunStatus): boolean {
  return RUN_TRANSITIONS[from].includes(to);
}

/** The event each write appends (one per write). */
export const TRANSITION_EVENTS = {
  start: 'run_started',
  dispatch: 'run_dispatched',
  succeed: 'run_succeeded',
  recover: 'run_recovered',
  fail: 'run_failed',
  interrupt: 'run_interrupted',
  flag: 'run_flagged',
} as const;

/** A status write the table does not allow: a bug in lem, never the user's input. */
export class IllegalTransitionError extends Error {
  readonly exitCode = EXIT_INTERNAL;
  constructor(
    readonly campaignId: string,
    readonly position: number,
    readonly from: { status: RunStatus; attempt: number } | null,
    readonly to: RunStatus,
    readonly attempt: number,
    why: string,
  ) {
    super(`run ${position} of ${campaignId} cannot ${from ? `go from ${from.status} (attempt ${from.attempt}) to` : 'become'} ${to} (attempt ${attempt}): ${why}.`);
    this.name = 'IllegalTransitionError';
  }
}

export interface SucceededResult {
  resultPath: string;
  metrics: Record<string, number | null>;
  flags: readonly string[];
  exitCode: number | null;
  /** Recorded by recovery after the orchestrator died (event run_recovered). */
  recovered?: boolean;
  /** Checksum and size of the result file as ingested (checked again whenever results are read). */
  sha256?: string;
  bytes?: number;
}

/** One write to a run: what it does, for which attempt. */
export type RunWrite =
  | { kind: 'start'; attempt: number; attemptToken: string | null }
  | { kind: 'dispatch'; attempt: number; handle: string }
  | { kind: 'succeed'; attempt: number; result: SucceededResult }
  | { kind: 'end'; attempt: number; status: 'failed' | 'interrupted'; exitCode: number | null; error: string; failureKind?: string | null }
  /** A validation flag added to a recorded success (its status, attempt and result stay as they are). */
  | { kind: 'flag'; attempt: number; flag: string; detail: Record<string, unknown> };

export interface RunKey {
  campaignId: string;
  position: number;
}

interface Current {
  status: RunStatus;
  attempt: number;
}

const cache = new WeakMap<Db, ReturnType<typeof prepare>>();

function prepare(db: Db) {
  const guard = 'WHERE campaign_id = ? AND position = ? AND status = ? AND attempt = ?';
  return {
    current: db.prepare<[string, number], Current>('SELECT status, attempt FROM runs WHERE campaign_id = ? AND position = ?'),
    start: db.prepare(
      `UPDATE runs SET status = 'running', attempt = ?, attempt_token = ?, handle = NULL, started_at = ?, ended_at = NULL, exit_code = NULL, error = NULL, failure_kind = NULL, result_path = NULL, metrics_json = NULL, flags_json = NULL, result_sha256 = NULL, result_bytes = NULL ${guard}`,
    ),
    dispatch: db.prepare(`UPDATE runs SET handle = ? ${guard}`),
    succeed: db.prepare(
      `UPDATE runs SET status = 'succeeded', ended_at = ?, exit_code = ?, result_path = ?, metrics_json = ?, flags_json = ?, result_sha256 = ?, result_bytes = ?, error = NULL, failure_kind = NULL ${guard}`,
    ),
    end: db.prepare(`UPDATE runs SET status = ?, ended_at = ?, exit_code = ?, error = ?, failure_kind = ? ${guard}`),
    flags: db.prepare<[string, number], { flags_json: string | null }>('SELECT flags_json FROM runs WHERE campaign_id = ? AND position = ?'),
    flag: db.prepare(`UPDATE runs SET flags_json = ? ${guard}`),
    event: db.prepare('INSERT INTO events (campaign_id, position, at, kind, detail_json) VALUES (?, ?, ?, ?, ?)'),
    touch: db.prepare('UPDATE campaigns SET updated_at = ? WHERE id = ?'),
    enterPlanned: db.prepare("INSERT INTO runs (campaign_id, position, experiment_id, cycle, status) VALUES (?, ?, ?, ?, 'pending')"),
    enterImported: db.prepare(
      'INSERT INTO runs (campaign_id, position, experiment_id, cycle, status, attempt, started_at, ended_at, error, result_path, metrics_json, flags_json) VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?)',
    ),
  };
}

function stmts(db: Db): ReturnType<typeof prepare> {
  let s = cache.get(db);
  if (!s) {
    s = prepare(db);
    cache.set(db, s);
  }
  return s;
}

/** Appends one event to the campaign's log (and touches the campaign's updated_at). */
export function appendEvent(db: Db, campaignId: string, position: number | null, at: string, kind: string, detail: Record<string, unknown>): void {
  const s = stmts(db);
  s.event.run(campaignId, position, at, kind, JSON.stringify(detail));
  s.touch.run(at, campaignId);
}

function targetOf(w: RunWrite): RunStatus {
  switch (w.kind) {
    case 'start':
    case 'dispatch':
      return 'running';
    case 'succeed':
    case 'flag':
      return 'succeeded';
    case 'end':
      return w.status;
  }
}

/**
 * Applies one write to a run, checked against the table, in one transaction with its event.
 * Returns false only for a result of an attempt that is no longer running (it is not recorded)
 * and for a flag on an attempt that is not a recorded success; throws IllegalTransitionError for
 * any move the table does not allow. A flag already there is kept once (true, no event).
 */
export function transition(db: Db, key: RunKey, at: string, w: RunWrite): boolean {
  return db.transaction(() => apply(db, key, at, w)).immediate();
}

function apply(db: Db, { campaignId, position }: RunKey, at: string, w: RunWrite): boolean {
  const s = stmts(db);
  const to = targetOf(w);
  const cur = s.current.get(campaignId, position) ?? null;
  const illegal = (why: string): IllegalTransitionError => new IllegalTransitionError(campaignId, position, cur, to, w.attempt, why);
  if (cur === null) {
    if (w.kind === 'flag') return false;
    throw illegal('no such run');
  }
  const thisAttemptRunning = cur.status === 'running' && cur.attempt === w.attempt;
  switch (w.kind) {
    case 'start':
      if (cur.status === 'succeeded') throw illegal('it already succeeded (a result is never replaced)');
      if (!canTransition(cur.status, 'running')) throw illegal(`a ${cur.status} run must end before it starts again`);
      if (!(w.attempt > cur.attempt)) throw illegal('a new attempt must be numbered above the last one');
      break;
    case 'dispatch':
      if (!thisAttemptRunning) throw illegal('a handle is recorded only for the attempt that is running');
      break;
    case 'succeed':
      if (!thisAttemptRunning) {
        // A late or second outcome of an attempt that ran: not recorded (a result is never recorded twice).
        if (cur.status !== 'pending' && w.attempt >= 1 && w.attempt <= cur.attempt) return false;
        throw illegal('that attempt never started');
      }
      break;
    case 'end':
      if (!thisAttemptRunning) throw illegal('only the attempt that is running ends');
      break;
    case 'flag':
      if (cur.status !== 'succeeded' || cur.attempt !== w.attempt) return false;
      break;
  }
  // The table is the last word: a status change it does not list is refused whatever the checks above.
  if (cur.status !== to && !canTransition(cur.status, to)) throw illegal('the transition table does not allow it');
  const guard = [campaignId, position, cur.status, cur.attempt] as const;
  let changes: number;
  let event: string;
  let detail: Record<string, unknown>;
  switch (w.kind) {
    case 'start':
      changes = s.start.run(w.attempt, w.attemptToken, at, ...guard).changes;
      event = TRANSITION_EVENTS.start;
      detail = w.attemptToken ? { attempt: w.attempt, attempt_token: w.attemptToken } : { attempt: w.attempt };
      break;
    case 'dispatch':
      changes = s.dispatch.run(w.handle, ...guard).changes;
      event = TRANSITION_EVENTS.dispatch;
      detail = { attempt: w.attempt, handle: w.handle };
      break;
    case 'succeed': {
      const r = w.result;
      changes = s.succeed.run(at, r.exitCode, r.resultPath, JSON.stringify(r.metrics), JSON.stringify(r.flags), r.sha256 ?? null, r.bytes ?? null, ...guard).changes;
      event = r.recovered ? TRANSITION_EVENTS.recover : TRANSITION_EVENTS.succeed;
      detail = { attempt: w.attempt, result_path: r.resultPath };
      break;
    }
    case 'end':
      changes = s.end.run(w.status, at, w.exitCode, w.error, w.failureKind ?? null, ...guard).changes;
      event = w.status === 'failed' ? TRANSITION_EVENTS.fail : TRANSITION_EVENTS.interrupt;
      detail = { attempt: w.attempt, exit_code: w.exitCode, error: w.error, ...(w.failureKind ? { failure_kind: w.failureKind } : {}) };
      break;
    case 'flag': {
      const json = s.flags.get(campaignId, position)?.flags_json ?? null;
      const flags = json === null ? [] : (JSON.parse(json) as string[]);
      if (flags.includes(w.flag)) return true;
      changes = s.flag.run(JSON.stringify([...flags, w.flag]), ...guard).changes;
      event = TRANSITION_EVENTS.flag;
      detail = { attempt: w.attempt, flag: w.flag, ...w.detail };
      break;
    }
  }
  if (changes !== 1) throw illegal(`the guarded update changed ${changes} rows, not 1`);
  appendEvent(db, campaignId, position, at, event, detail);
  return true;
}

/** A run entering the manifest: planned (pending, attempt 0) or imported (final, attempt 1). */
export type RunEntry =
  | { origin: 'planned'; campaignId: string; position: number; experimentId: string; cycle: number }
  | {
      origin: 'imported';
      campaignId: string;
      position: number;
      experimentId: string;
      cycle: number;
      status: RunStatus;
      startedAt: string | null;
      endedAt: string | null;
      error: string | null;
      resultPath: string;
      metrics: Record<string, number | null>;
      flags: readonly string[];
    };

/** Inserts a run with the status its origin allows (the caller's transaction records its event). */
export function enterRun(db: Db, e: RunEntry): void {
  const status: RunStatus = e.origin === 'planned' ? 'pending' : e.status;
  if (!(ENTRY_STATUSES[e.origin] as readonly RunStatus[]).includes(status)) {
    throw new IllegalTransitionError(e.campaignId, e.position, null, status, 0, `an ${e.origin} run enters as ${ENTRY_STATUSES[e.origin].join(' or ')}`);
  }
  const s = stmts(db);
  const changes =
    e.origin === 'planned'
      ? s.enterPlanned.run(e.campaignId, e.position, e.experimentId, e.cycle).changes
      : s.enterImported.run(e.campaignId, e.position, e.experimentId, e.cycle, status, e.startedAt, e.endedAt, e.error, e.resultPath, JSON.stringify(e.metrics), JSON.stringify(e.flags)).changes;
  if (changes !== 1) throw new IllegalTransitionError(e.campaignId, e.position, null, status, 0, `the insert changed ${changes} rows, not 1`);
}
