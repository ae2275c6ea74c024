/**
 * The campaign manifest: campaign → experiment → run (cycle, attempt, handle, status, result path),
 * plus an append-only event log. Every run status change goes through transitions.ts: checked
 * against the allowed table, one transaction with its event.
 */
import { hostname } from 'node:os';
import type { Clock } from '../util/clock.js';
import { LemError } from '../util/errors.js';
import { pidAlive } from '../util/process.js';
import { openDb, type Db, type OpenOptions } from './db.js';
import { designOf, insertDesign, type CampaignDesign } from './design.js';
import { toCampaign, toRun, type CampaignRow, type CampaignStatus, type ExperimentRow, type NewCampaign, type RawCampaign, type RawRun, type RunRow, type StatusCounts } from './rows.js';
import { appendEvent, enterRun, transition, type RunStatus, type SucceededResult } from './transitions.js';
import { insertWindows, overlappingWindows, windowsOf, type WindowRow } from './windows.js';

export type { WindowRow } from './windows.js';
export type { CampaignDesign } from './design.js';
export { RUN_STATUSES, RUN_TRANSITIONS, IllegalTransitionError, canTransition, type RunStatus } from './transitions.js';
export { runId, type CampaignRow, type CampaignStatus, type ExperimentRow, type NewCampaign, type PlannedRun, type RunRow, type StatusCounts } from './rows.js';

export class Manifest {
  private readonly stmts;

  constructor(
    readonly db: Db,
    private readonly clock: Clock,
  ) {
    this.stmts = {
      campaign: db.prepare<[string], RawCampaign>('SELECT * FROM campaigns WHERE id = ?'),
      counts: db.prepare<[string], { status: RunStatus; n: number }>(
        'SELECT status, count(*) AS n FROM runs WHERE campaign_id = ? GROUP BY status',
      ),
      run: db.prepare<[string, number], RawRun>('SELECT * FROM runs WHERE campaign_id = ? AND position = ?'),
    };
  }

  static open(path: string, clock: Clock, opts: OpenOptions = {}): Manifest {
    return new Manifest(openDb(path, opts), clock);
  }

  close(): void {
    this.db.close();
  }

  private now(): string {
    return this.clock.now().toISOString();
  }

  private logEvent(campaignId: string, position: number | null, kind: string, detail: Record<string, unknown>): void {
    appendEvent(this.db, campaignId, position, this.now(), kind, detail);
  }

  /** Records a whole planned campaign in one transaction. */
  createCampaign(c: NewCampaign): void {
    const now = this.now();
    const insertExp = this.db.prepare(
      'INSERT INTO experiments (campaign_id, id, position, name, backend, config_json) VALUES (?, ?, ?, ?, ?, ?)',
    );
    this.db
      .transaction(() => {
        this.db
          .prepare(
            "INSERT INTO campaigns (id, name, source_path, settings_json, notes_json, status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'planned', ?, ?)",
          )
          .run(c.id, c.name, c.sourcePath, JSON.stringify(c.settings), JSON.stringify(c.notes), now, now);
        c.experiments.forEach((e, i) => insertExp.run(c.id, e.id, i, e.name, e.backend, JSON.stringify(e.config)));
        for (const r of c.runs) enterRun(this.db, { origin: 'planned', campaignId: c.id, position: r.position, experimentId: r.experimentId, cycle: r.cycle });
        if (c.design) insertDesign(this.db, c.id, c.design);
        this.logEvent(c.id, null, 'campaign_planned', { experiments: c.experiments.length, runs: c.runs.length });
      })
      .immediate();
  }

  campaign(id: string): CampaignRow | null {
    const r = this.stmts.campaign.get(id);
    return r ? toCampaign(r) : null;
  }

  /** The campaign, found by full id or a unique prefix; LemError when none or ambiguous. */
  findCampaign(idOrPrefix: string): CampaignRow {
    const exact = this.campaign(idOrPrefix);
    if (exact) return exact;
    const rows = this.db
      .prepare<[string], RawCampaign>("SELECT * FROM campaigns WHERE id LIKE ? ESCAPE '\\' ORDER BY created_at")
      .all(`${idOrPrefix.replace(/[\\%_]/g, (m) => `\\${m}`)}%`);
    if (rows.length === 1) return toCampaign(rows[0] as RawCampaign);
    if (rows.length === 0) throw new LemError(`no campaign '${idOrPrefix}' in this manifest; \`lem campaign list\` shows the ones there are.`);
    throw new LemError(`'${idOrPrefix}' matches ${rows.length} campaigns (${rows.map((r) => r.id).join(', ')}); give more of the id.`);
  }

  /** The campaign's design record (null when planned before designs were recorded). */
  design(campaignId: string): CampaignDesign | null {
    return designOf(this.db, campaignId);
  }

  latestCampaign(): CampaignRow | null {
    const r = this.db.prepare<[], RawCampaign>('SELECT * FROM campaigns ORDER BY created_at DESC, rowid DESC LIMIT 1').get();
    return r ? toCampaign(r) : null;
  }

  campaigns(): CampaignRow[] {
    return this.db.prepare<[], RawCampaign>('SELECT * FROM campaigns ORDER BY created_at, rowid').all().map(toCampaign);
  }

  experiments(campaignId: string): ExperimentRow[] {
    return this.db
      .prepare<[string], { id: string; position: number; name: string; backend: string; config_json: string }>(
        'SELECT id, position, name, backend, config_json FROM experiments WHERE campaign_id = ? ORDER BY position',
      )
      .all(campaignId)
      .map((r) => ({ id: r.id, position: r.position, name: r.name, backend: r.backend, config: JSON.parse(r.config_json) as Record<string, unknown> }));
  }

  runs(campaignId: string, statuses?: readonly RunStatus[]): RunRow[] {
    if (!statuses) {
      return this.db.prepare<[string], RawRun>('SELECT * FROM runs WHERE campaign_id = ? ORDER BY position').all(campaignId).map(toRun);
    }
    const marks = statuses.map(() => '?').join(',');
    return this.db
      .prepare<unknown[], RawRun>(`SELECT * FROM runs WHERE campaign_id = ? AND status IN (${marks}) ORDER BY position`)
      .all(campaignId, ...statuses)
      .map(toRun);
  }

  run(campaignId: string, position: number): RunRow | null {
    const r = this.stmts.run.get(campaignId, position);
    return r ? toRun(r) : null;
  }

  counts(campaignId: string): StatusCounts {
    const out: StatusCounts = { pending: 0, running: 0, succeeded: 0, failed: 0, interrupted: 0 };
    for (const r of this.stmts.counts.all(campaignId)) out[r.status] = r.n;
    return out;
  }

  /** Per experiment: how many of its runs are in each status (for status displays). */
  countsByExperiment(campaignId: string): Array<{ experimentId: string; name: string; counts: StatusCounts }> {
    const rows = this.db
      .prepare<[string], { experiment_id: string; name: string; status: RunStatus; n: number }>(
        'SELECT r.experiment_id, e.name, r.status, count(*) AS n FROM runs r JOIN experiments e ON e.campaign_id = r.campaign_id AND e.id = r.experiment_id WHERE r.campaign_id = ? GROUP BY r.experiment_id, r.status ORDER BY e.position',
      )
      .all(campaignId);
    const out = new Map<string, { experimentId: string; name: string; counts: StatusCounts }>();
    for (const r of rows) {
      const entry = out.get(r.experiment_id) ?? { experimentId: r.experiment_id, name: r.name, counts: { pending: 0, running: 0, succeeded: 0, failed: 0, interrupted: 0 } };
      entry.counts[r.status] = r.n;
      out.set(r.experiment_id, entry);
    }
    return [...out.values()];
  }

  /** The most recent failed or interrupted runs, newest first. */
  recentProblems(campaignId: string, limit: number): RunRow[] {
    return this.db
      .prepare<[string, number], RawRun>(
        "SELECT * FROM runs WHERE campaign_id = ? AND status IN ('failed', 'interrupted') ORDER BY ended_at DESC, position DESC LIMIT ?",
      )
      .all(campaignId, limit)
      .map(toRun);
  }

  /** Failed and interrupted runs by the kind of their last attempt's failure (null: recorded before kinds). */
  problemsByKind(campaignId: string): Array<{ kind: string | null; status: RunStatus; n: number }> {
    return this.db
      .prepare<[string], { kind: string | null; status: RunStatus; n: number }>(
        "SELECT failure_kind AS kind, status, count(*) AS n FROM runs WHERE campaign_id = ? AND status IN ('failed', 'interrupted') GROUP BY failure_kind, status ORDER BY n DESC, kind",
      )
      .all(campaignId);
  }

  events(campaignId: string): Array<{ seq: number; position: number | null; at: string; kind: string; detail: Record<string, unknown> }> {
    return this.db
      .prepare<[string], { seq: number; position: number | null; at: string; kind: string; detail_json: string }>(
        'SELECT seq, position, at, kind, detail_json FROM events WHERE campaign_id = ? ORDER BY seq',
      )
      .all(campaignId)
      .map((e) => ({ seq: e.seq, position: e.position, at: e.at, kind: e.kind, detail: JSON.parse(e.detail_json) as Record<string, unknown> }));
  }

  /** Takes ownership of a campaign for this process; refuses while another live process holds it. */
  claim(campaignId: string, pid: number = process.pid, host: string = hostname()): void {
    this.db
      .transaction(() => {
        const c = this.campaign(campaignId);
        if (!c) throw new LemError(`no campaign '${campaignId}'.`);
        if (c.ownerPid !== null && c.ownerPid !== pid && (c.ownerHost !== host || pidAlive(c.ownerPid))) {
          throw new LemError(
            `campaign ${campaignId} is being run by process ${c.ownerPid} on ${c.ownerHost ?? 'another host'}; wait for it or stop it first.`,
          );
        }
        this.db.prepare("UPDATE campaigns SET owner_pid = ?, owner_host = ?, status = 'running' WHERE id = ?").run(pid, host, campaignId);
        this.logEvent(campaignId, null, 'campaign_claimed', { pid, host, previous_pid: c.ownerPid });
      })
      .immediate();
  }

  release(campaignId: string, status: CampaignStatus): void {
    this.db
      .transaction(() => {
        this.db.prepare('UPDATE campaigns SET owner_pid = NULL, owner_host = NULL, status = ? WHERE id = ?').run(status, campaignId);
        this.logEvent(campaignId, null, 'campaign_released', { status });
      })
      .immediate();
  }

  /**
   * Marks a run running with this attempt, recording the attempt's token (which its worker carries
   * on its command line) before the worker exists, so a resume can always find the worker.
   */
  markRunning(campaignId: string, position: number, attempt: number, attemptToken: string | null = null): void {
    transition(this.db, { campaignId, position }, this.now(), { kind: 'start', attempt, attemptToken });
  }

  /** Other campaigns of this manifest whose owning process is alive (or on another host, so unknown). */
  liveCampaigns(exceptId: string, host: string = hostname()): CampaignRow[] {
    return this.campaigns().filter((c) => c.id !== exceptId && c.ownerPid !== null && (c.ownerHost !== host || pidAlive(c.ownerPid)));
  }

  /** Records a measured window of an attempt on each device it held; returns how many were new. */
  recordWindows(campaignId: string, position: number, attempt: number, w: { devices: readonly string[]; startedAt: string; endedAt: string }): number {
    return this.db.transaction(() => insertWindows(this.db, { campaignId, position, attempt, ...w })).immediate();
  }

  /** Recorded windows of other attempts (any campaign here) overlapping this attempt's on a device. */
  overlappingWindows(campaignId: string, position: number, attempt: number): WindowRow[] {
    return overlappingWindows(this.db, campaignId, position, attempt);
  }

  windows(campaignId: string): WindowRow[] {
    return windowsOf(this.db, campaignId);
  }

  /**
   * Adds a validation flag to a run that already succeeded with this attempt (a later ingest found
   * its window overlapped); returns false when that run/attempt is not a recorded success.
   */
  addFlag(campaignId: string, position: number, attempt: number, flag: string, detail: Record<string, unknown>): boolean {
    return transition(this.db, { campaignId, position }, this.now(), { kind: 'flag', attempt, flag, detail });
  }

  /** Records the running attempt's handle (its container or process); throws unless that attempt is running. */
  setHandle(campaignId: string, position: number, attempt: number, handle: string): void {
    transition(this.db, { campaignId, position }, this.now(), { kind: 'dispatch', attempt, handle });
  }

  /**
   * Records a successful run. Only a run still 'running' with this attempt is updated, so a result
   * is never recorded twice; returns false when the run is no longer running with that attempt.
   */
  markSucceeded(campaignId: string, position: number, attempt: number, r: SucceededResult): boolean {
    return transition(this.db, { campaignId, position }, this.now(), { kind: 'succeed', attempt, result: r });
  }

  /** Ends the running attempt as failed or interrupted; throws unless that attempt is running. */
  markEnded(campaignId: string, position: number, attempt: number, r: { status: 'failed' | 'interrupted'; exitCode: number | null; error: string; failureKind?: string | null }): void {
    transition(this.db, { campaignId, position }, this.now(), { kind: 'end', attempt, ...r });
  }

  note(campaignId: string, position: number | null, kind: string, detail: Record<string, unknown>): void {
    this.db.transaction(() => this.logEvent(campaignId, position, kind, detail)).immediate();
  }
}
