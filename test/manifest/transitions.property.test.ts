/**
 * Property test of the run transitions on a real SQLite manifest: seeded random sequences of
 * operations (legal and illegal ones, stale and future attempts, flags), with simulated crashes
 * between steps (a write torn by the crash, the manifest closed and reopened, then the runner's
 * recovery: a result found on disk is recorded as recovered, any other running run is interrupted),
 * checking after every step that the manifest agrees with an independent model of the table and
 * that the invariants hold.
 */
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { IllegalTransitionError, Manifest, type RunRow, type RunStatus } from '../../src/manifest/manifest.js';
import { createRng, type Rng } from '../../src/util/random.js';
import { systemClock } from '../../src/util/clock.js';
import { tempDir } from '../helpers/cli.js';
import { ExperimentConfig } from '../../src/config/experiment.js';
import type { CampaignSettings } from '../../src/config/campaign.js';

const SEQUENCES = 200;
const STEPS = 30;
const RUNS = 4;

/** The table as the README documents it (written out here, not imported: this is the specification). */
const ALLOWED: Record<RunStatus, RunStatus[]> = {
  pending: ['running'],
  running: ['succeeded', 'failed', 'interrupted'],
  succeeded: [],
  failed: ['running'],
  interrupted: ['running'],
};
const STATUS_EVENT: Record<string, RunStatus> = {
  run_started: 'running',
  run_succeeded: 'succeeded',
  run_recovered: 'succeeded',
  run_failed: 'failed',
  run_interrupted: 'interrupted',
};

const settings: CampaignSettings = { cycles: RUNS, structure: 'interleaved', seed: 1, thermal_gap: 0, runtime: 'local', force_cold_start: false, retries: 0, keep_services: false };
const resultPathOf = (pos: number, attempt: number): string => `/runs/p${pos}/a${attempt}/result.json`;
const resultOf = (pos: number, attempt: number, recovered = false) => ({ resultPath: resultPathOf(pos, attempt), metrics: { attempt }, flags: [], exitCode: recovered ? null : 0, recovered });

/** An event as stored (its row, as one string: compared whole, parsed only when replayed). */
interface Event {
  position: number | null;
  kind: string;
  row: string;
  detail: string;
}
interface Snapshot {
  runs: RunRow[];
  events: Event[];
}

type Op =
  | { op: 'start' | 'dispatch' | 'succeed' | 'fail' | 'interrupt' | 'flag'; pos: number; attempt: number }
  | { op: 'crash'; torn: boolean; results: boolean[]; late: boolean };

/** What the table says an operation does: it changes the run (ok), is not recorded (false), or is illegal (throw). */
type Expected = 'ok' | 'false' | 'throw';

interface ModelRun {
  status: RunStatus;
  attempt: number;
  flags: string[];
}

function expected(op: Exclude<Op, { op: 'crash' }>, run: ModelRun, flag: string): Expected {
  const running = run.status === 'running' && run.attempt === op.attempt;
  switch (op.op) {
    case 'start':
      return ALLOWED[run.status].includes('running') && op.attempt > run.attempt ? 'ok' : 'throw';
    case 'dispatch':
    case 'fail':
    case 'interrupt':
      return running ? 'ok' : 'throw';
    case 'succeed':
      if (running) return 'ok';
      return run.status !== 'pending' && op.attempt >= 1 && op.attempt <= run.attempt ? 'false' : 'throw';
    case 'flag':
      if (run.status !== 'succeeded' || run.attempt !== op.attempt) return 'false';
      return run.flags.includes(flag) ? 'false' : 'ok';
  }
}

function pickAttempt(rng: Rng, current: number, start: boolean): number {
  const r = rng.next();
  if (start) return r < 0.8 ? current + 1 : r < 0.9 ? current : Math.max(0, current - 1);
  return r < 0.75 ? current : r < 0.9 ? Math.max(0, current - 1) : current + 1;
}

function nextOp(rng: Rng, model: ModelRun[]): Op {
  if (rng.next() < 0.08) return { op: 'crash', torn: rng.next() < 0.5, results: model.map(() => rng.next() < 0.5), late: rng.next() < 0.5 };
  const kinds = ['start', 'start', 'dispatch', 'succeed', 'succeed', 'fail', 'interrupt', 'flag'] as const;
  const op = kinds[rng.int(kinds.length)] as (typeof kinds)[number];
  const pos = rng.int(RUNS);
  return { op, pos, attempt: pickAttempt(rng, (model[pos] as ModelRun).attempt, op === 'start') };
}

function snapshot(m: Manifest, id: string): Snapshot {
  const events = m.db
    .prepare<[string], { seq: number; position: number | null; at: string; kind: string; detail_json: string }>('SELECT * FROM events WHERE campaign_id = ? ORDER BY seq')
    .all(id)
    .map((e) => ({ position: e.position, kind: e.kind, detail: e.detail_json, row: `${e.seq}|${e.position}|${e.at}|${e.kind}|${e.detail_json}` }));
  return { runs: m.runs(id), events };
}

type Replayed = Map<number, { status: RunStatus; attempt: number; handle: string | null; resultPath: string | null; flags: string[] }>;

/**
 * The runs as the event log tells them: replaying it must give what the runs table holds. The
 * replay goes on from the previous step's (the log's earlier events are checked unchanged first).
 */
function replay(out: Replayed, events: readonly Event[]): Replayed {
  for (const e of events) {
    if (e.position === null) continue;
    const r = out.get(e.position) ?? { status: 'pending' as RunStatus, attempt: 0, handle: null, resultPath: null, flags: [] };
    const d = JSON.parse(e.detail) as { attempt?: number; handle?: string; result_path?: string; flag?: string };
    if (e.kind === 'run_started') Object.assign(r, { status: 'running', attempt: d.attempt, handle: null, resultPath: null, flags: [] });
    else if (e.kind === 'run_dispatched') r.handle = d.handle ?? null;
    else if (e.kind === 'run_flagged') r.flags.push(d.flag ?? '');
    else if (STATUS_EVENT[e.kind]) {
      if (d.attempt !== r.attempt) expect(d.attempt, `${e.row}: ${e.kind} of run ${e.position} names the attempt that is running`).toBe(r.attempt);
      r.status = STATUS_EVENT[e.kind] as RunStatus;
      if (r.status === 'succeeded') r.resultPath = d.result_path ?? null;
    }
    out.set(e.position, r);
  }
  return out;
}

function checkInvariants(prev: Snapshot, cur: Snapshot, model: ModelRun[], replayed: Replayed, writes: number, where: string): void {
  // The event log is append-only, and each write appended exactly one event.
  const kept = cur.events.slice(0, prev.events.length).map((e) => e.row);
  const was = prev.events.map((e) => e.row);
  if (kept.some((row, i) => row !== was[i]) || kept.length !== was.length) expect(kept, `${where}: the log's earlier events are unchanged`).toEqual(was);
  const added = cur.events.slice(prev.events.length);
  expect(added.length, `${where}: one event per write`).toBe(writes);
  replay(replayed, added);
  for (const [i, now] of cur.runs.entries()) {
    const before = prev.runs[i] as RunRow;
    const at = `${where}, run ${now.position}`;
    // Status moves only along the table; a start is the only way to (re)enter running.
    if (now.status !== before.status) expect(ALLOWED[before.status], `${at}: ${before.status} → ${now.status}`).toContain(now.status);
    const statusEvents = added.filter((e) => e.position === now.position && STATUS_EVENT[e.kind]);
    expect(statusEvents.map((e) => STATUS_EVENT[e.kind]), `${at}: one event per transition`).toEqual(now.status !== before.status ? [now.status] : []);
    // The attempt never decreases, and rises only with a start.
    expect(now.attempt, `${at}: attempt never decreases`).toBeGreaterThanOrEqual(before.attempt);
    if (now.attempt !== before.attempt) expect(now.status, `${at}: a new attempt is a start`).toBe('running');
    // A succeeded run never changes again (flags may only be added).
    if (before.status === 'succeeded' && JSON.stringify({ ...now, flags: null }) !== JSON.stringify({ ...before, flags: null })) {
      expect({ ...now, flags: null }, `${at}: a succeeded run never changes`).toEqual({ ...before, flags: null });
    }
    if (before.status === 'succeeded') expect((now.flags ?? []).slice(0, (before.flags ?? []).length).join(), `${at}: flags are only added`).toBe((before.flags ?? []).join());
    // A recorded result belongs to the attempt that produced it; no other run holds one.
    if (now.status === 'succeeded') {
      expect(now.resultPath, `${at}: the result is this attempt's`).toBe(resultPathOf(now.position, now.attempt));
      expect(now.metrics?.attempt, `${at}: the metrics are this attempt's`).toBe(now.attempt);
    } else {
      expect(now.resultPath === null && now.metrics === null && now.flags === null, `${at}: no result before success`).toBe(true);
    }
    // The log tells the same story as the runs table, and the manifest agrees with the model.
    const told = replayed.get(now.position) ?? { status: 'pending', attempt: 0, handle: null, resultPath: null, flags: [] };
    const stored = { status: now.status, attempt: now.attempt, handle: now.handle, resultPath: now.resultPath, flags: now.flags ?? [] };
    if (JSON.stringify(told) !== JSON.stringify(stored)) expect(told, `${at}: the event log replays to the run`).toEqual(stored);
    const mine = model[i] as ModelRun;
    expect(`${now.status}/${now.attempt}`, `${at}: the manifest agrees with the model`).toBe(`${mine.status}/${mine.attempt}`);
  }
}

/** One operation on the manifest; returns the manifest (a new one after a crash) and how many writes it made. */
function apply(m: Manifest, path: string, id: string, op: Op, model: ModelRun[], step: number, where: string, before: Snapshot): { m: Manifest; writes: number } {
  if (op.op === 'crash') {
    // Durability against power loss is SQLite's (WAL) and not what this tests: without the fsyncs
    // a close's checkpoint makes, a crash step costs ~3 ms instead of ~17.
    m.db.pragma('synchronous = OFF');
    if (op.torn) {
      // The process dies inside a write: a transaction began, changed a run and logged, and never committed.
      m.db.prepare('BEGIN IMMEDIATE').run();
      m.db.prepare("UPDATE runs SET status = 'succeeded', attempt = attempt + 7, result_path = 'torn' WHERE campaign_id = ? AND position = 0").run(id);
      m.db.prepare("INSERT INTO events (campaign_id, position, at, kind, detail_json) VALUES (?, 0, 't', 'run_succeeded', '{}')").run(id);
    }
    m.close();
    const again = Manifest.open(path, systemClock);
    // The runner's recovery: a result the dead orchestrator's worker completed is kept; the rest are interrupted.
    let writes = 0;
    for (const run of again.runs(id, ['running'])) {
      const mine = model[run.position] as ModelRun;
      if (op.results[run.position]) {
        expect(again.markSucceeded(id, run.position, run.attempt, resultOf(run.position, run.attempt, true)), `${where}: recovery records the result`).toBe(true);
        Object.assign(mine, { status: 'succeeded', flags: [] });
      } else {
        again.markEnded(id, run.position, run.attempt, { status: 'interrupted', exitCode: null, error: 'the orchestrator stopped while this run was in flight' });
        mine.status = 'interrupted';
      }
      writes++;
    }
    // A late outcome of an attempt recovery already ended is not recorded.
    if (op.late) {
      for (const [pos, mine] of model.entries()) {
        if (mine.attempt >= 1 && mine.status !== 'running') expect(again.markSucceeded(id, pos, mine.attempt, resultOf(pos, mine.attempt)), `${where}: late result of run ${pos}`).toBe(false);
      }
    }
    return { m: again, writes };
  }
  const mine = model[op.pos] as ModelRun;
  const flag = `flag${step % 3}`;
  const want = expected(op, mine, flag);
  const call = (): unknown => {
    switch (op.op) {
      case 'start':
        return m.markRunning(id, op.pos, op.attempt, `lem-${id}-p${op.pos}-a${op.attempt}`);
      case 'dispatch':
        return m.setHandle(id, op.pos, op.attempt, `h${step}`);
      case 'succeed':
        return m.markSucceeded(id, op.pos, op.attempt, resultOf(op.pos, op.attempt));
      case 'fail':
      case 'interrupt':
        return m.markEnded(id, op.pos, op.attempt, { status: op.op === 'fail' ? 'failed' : 'interrupted', exitCode: 1, error: `step ${step}` });
      case 'flag':
        return m.addFlag(id, op.pos, op.attempt, flag, { step });
    }
  };
  if (want === 'throw') {
    let thrown: unknown = null;
    try {
      call();
    } catch (e) {
      thrown = e;
    }
    expect(thrown, `${where}: an illegal ${op.op} throws`).toBeInstanceOf(IllegalTransitionError);
    expect((thrown as IllegalTransitionError).exitCode).toBe(70);
    const after = snapshot(m, id);
    // (Compared as JSON first: a deep toEqual on every step is slow; it runs to show a difference.)
    if (JSON.stringify(after) !== JSON.stringify(before)) expect(after, `${where}: an illegal ${op.op} changes nothing`).toEqual(before);
    return { m, writes: 0 };
  }
  const got = call();
  if (op.op === 'succeed') expect(got, `${where}: succeed answers whether it recorded the result`).toBe(want === 'ok');
  if (op.op === 'flag') expect(got, `${where}: flag answers whether the attempt is a recorded success`).toBe(mine.status === 'succeeded' && mine.attempt === op.attempt);
  if (want === 'false') return { m, writes: 0 };
  if (op.op === 'start') Object.assign(mine, { status: 'running', attempt: op.attempt, flags: [] });
  else if (op.op === 'succeed') Object.assign(mine, { status: 'succeeded', flags: [] });
  else if (op.op === 'fail') mine.status = 'failed';
  else if (op.op === 'interrupt') mine.status = 'interrupted';
  else if (op.op === 'flag') mine.flags.push(flag);
  return { m, writes: 1 };
}

describe('run transitions (property, seeded, real SQLite)', () => {
  // Each sequence gets its own manifest file, copied from one migrated empty manifest (cheap), so
  // that reopening after a crash checks a small file.
  const dir = tempDir();
  const template = join(dir, 'empty.db');
  Manifest.open(template, systemClock).close();
  let m: Manifest | null = null;
  afterAll(() => m?.close());

  it(`keeps the invariants over ${SEQUENCES} random sequences of ${STEPS} steps with crashes between them`, () => {
    const seen = { ok: 0, false: 0, throw: 0, crash: 0, torn: 0, recovered: 0, transitions: new Set<string>() };
    for (let seq = 0; seq < SEQUENCES; seq++) {
      const rng = createRng(`transitions-${seq}`);
      const id = `s${seq}`;
      const path = join(dir, `${id}.db`);
      copyFileSync(template, path);
      m?.close();
      m = Manifest.open(path, systemClock);
      m.createCampaign({
        id,
        name: id,
        sourcePath: 'x.yaml',
        settings,
        notes: [],
        experiments: [{ id: 'e', name: 'e', backend: 'calibration', config: ExperimentConfig.parse({ backend: 'calibration' }) }],
        runs: Array.from({ length: RUNS }, (_, i) => ({ position: i, experimentId: 'e', cycle: i + 1 })),
      });
      const model: ModelRun[] = Array.from({ length: RUNS }, () => ({ status: 'pending', attempt: 0, flags: [] }));
      const history: string[] = [];
      let prev = snapshot(m, id);
      const replayed: Replayed = new Map();
      for (let step = 0; step < STEPS; step++) {
        const op = nextOp(rng, model);
        history.push(JSON.stringify(op));
        const where = `seed transitions-${seq}, step ${step} (${history.slice(-6).join(' ')})`;
        if (op.op === 'crash') {
          seen.crash++;
          if (op.torn) seen.torn++;
        } else {
          seen[expected(op, model[op.pos] as ModelRun, `flag${step % 3}`)]++;
        }
        const out = apply(m, path, id, op, model, step, where, prev);
        m = out.m;
        const cur = snapshot(m, id);
        for (const [i, r] of cur.runs.entries()) {
          const was = (prev.runs[i] as RunRow).status;
          if (r.status !== was) seen.transitions.add(`${was}→${r.status}`);
          if (op.op === 'crash' && was === 'running' && r.status === 'succeeded') seen.recovered++;
        }
        checkInvariants(prev, cur, model, replayed, out.writes, where);
        prev = cur;
      }
    }
    // The sequences reached every kind of outcome and every edge of the table (else the test proves little).
    expect(seen.ok).toBeGreaterThan(0);
    expect(seen.false).toBeGreaterThan(0);
    expect(seen.throw).toBeGreaterThan(0);
    expect(seen.torn).toBeGreaterThan(0);
    expect(seen.recovered).toBeGreaterThan(0);
    const edges = Object.entries(ALLOWED).flatMap(([from, tos]) => tos.map((to) => `${from}→${to}`));
    expect([...seen.transitions].sort()).toEqual(edges.sort());
  });
});
