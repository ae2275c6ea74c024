/**
 * The schedule's state in the manifest: the daemon lock (pid, host) and cursor per campaign, and
 * one row per fired slot. Claiming a slot is one transaction that inserts its row (the primary key
 * (campaign, slot) makes a second claim of the same slot impossible) and moves the cursor, so a
 * daemon killed at any moment and started again never fires a slot twice.
 */
import { hostname } from 'node:os';
import { LemError } from '../util/errors.js';
import type { Manifest } from './manifest.js';
import { pidAlive } from '../util/process.js';

export type FireStatus = 'running' | 'succeeded' | 'failed' | 'interrupted';

export interface FireRow {
  slot: string;
  seq: number;
  scheduledAt: string;
  startedAt: string;
  endedAt: string | null;
  status: FireStatus;
  late: boolean;
  cycles: number[];
  error: string | null;
}

export interface DaemonRow {
  campaignId: string;
  pid: number | null;
  host: string | null;
  startedAt: string | null;
  logPath: string | null;
  anchorAt: string;
  cursorAt: string;
  endedAt: string | null;
  endReason: string | null;
  lastError: string | null;
}

interface RawFire {
  slot: string;
  seq: number;
  scheduled_at: string;
  started_at: string;
  ended_at: string | null;
  status: FireStatus;
  late: number;
  cycles_json: string;
  error: string | null;
}
interface RawDaemon {
  campaign_id: string;
  pid: number | null;
  host: string | null;
  started_at: string | null;
  log_path: string | null;
  anchor_at: string;
  cursor_at: string;
  ended_at: string | null;
  end_reason: string | null;
  last_error: string | null;
}

const toFire = (r: RawFire): FireRow => ({
  slot: r.slot,
  seq: r.seq,
  scheduledAt: r.scheduled_at,
  startedAt: r.started_at,
  endedAt: r.ended_at,
  status: r.status,
  late: r.late === 1,
  cycles: JSON.parse(r.cycles_json) as number[],
  error: r.error,
});
const toDaemon = (r: RawDaemon): DaemonRow => ({
  campaignId: r.campaign_id,
  pid: r.pid,
  host: r.host,
  startedAt: r.started_at,
  logPath: r.log_path,
  anchorAt: r.anchor_at,
  cursorAt: r.cursor_at,
  endedAt: r.ended_at,
  endReason: r.end_reason,
  lastError: r.last_error,
});

/** Is this daemon row held by a live process (another host's holder is assumed alive)? */
export function lockHeld(d: DaemonRow | null, host: string = hostname()): boolean {
  if (!d || d.pid === null) return false;
  return d.host !== host || pidAlive(d.pid);
}

export class FireStore {
  constructor(private readonly manifest: Manifest) {}

  private get db() {
    return this.manifest.db;
  }

  daemon(campaignId: string): DaemonRow | null {
    const r = this.db.prepare<[string], RawDaemon>('SELECT * FROM daemons WHERE campaign_id = ?').get(campaignId);
    return r ? toDaemon(r) : null;
  }

  /** Every campaign that has (or had) a daemon, newest first. */
  daemons(): DaemonRow[] {
    return this.db.prepare<[], RawDaemon>('SELECT d.* FROM daemons d JOIN campaigns c ON c.id = d.campaign_id ORDER BY c.created_at DESC').all().map(toDaemon);
  }

  /**
   * Takes the campaign's daemon lock for this process. A lock held by a live process is refused
   * with who holds it (exit 2); a dead holder's lock is taken over. The schedule's anchor (when it
   * started) is set the first time and kept across restarts.
   */
  acquire(campaignId: string, now: Date, logPath: string, pid: number = process.pid, host: string = hostname()): DaemonRow {
    return this.db
      .transaction(() => {
        const cur = this.daemon(campaignId);
        if (cur && cur.pid !== pid && lockHeld(cur, host)) {
          throw new LemError(
            `campaign ${campaignId} already has a daemon: process ${cur.pid} on ${cur.host ?? 'an unknown host'} (since ${cur.startedAt ?? '?'}); stop it with \`lem daemon stop ${campaignId}\` first.`,
          );
        }
        const at = now.toISOString();
        if (cur) {
          this.db.prepare('UPDATE daemons SET pid = ?, host = ?, started_at = ?, log_path = ?, ended_at = NULL, end_reason = NULL WHERE campaign_id = ?').run(pid, host, at, logPath, campaignId);
        } else {
          this.db.prepare('INSERT INTO daemons (campaign_id, pid, host, started_at, log_path, anchor_at, cursor_at) VALUES (?, ?, ?, ?, ?, ?, ?)').run(campaignId, pid, host, at, logPath, at, at);
        }
        this.manifest.note(campaignId, null, 'daemon_started', { pid, host, previous_pid: cur?.pid ?? null });
        return this.daemon(campaignId) as DaemonRow;
      })
      .immediate();
  }

  /** Gives the lock up (only if this process still holds it). */
  release(campaignId: string, now: Date, end: { reason: string | null }, pid: number = process.pid): void {
    this.db
      .transaction(() => {
        const changed = this.db
          .prepare('UPDATE daemons SET pid = NULL, host = NULL, ended_at = ?, end_reason = ? WHERE campaign_id = ? AND pid = ?')
          .run(now.toISOString(), end.reason, campaignId, pid).changes;
        if (changed === 1) this.manifest.note(campaignId, null, 'daemon_stopped', { pid, reason: end.reason });
      })
      .immediate();
  }

  setError(campaignId: string, error: string | null): void {
    this.db.prepare('UPDATE daemons SET last_error = ? WHERE campaign_id = ?').run(error, campaignId);
  }

  /**
   * Claims a slot for a fire: inserts its row as running and moves the cursor to it, in one
   * transaction. Returns null when the slot was already fired (it is never fired twice).
   */
  claim(campaignId: string, slot: Date, now: Date, cycles: readonly number[], late: boolean): FireRow | null {
    return this.db
      .transaction(() => {
        const key = slot.toISOString();
        const exists = this.db.prepare('SELECT 1 FROM fires WHERE campaign_id = ? AND slot = ?').get(campaignId, key);
        if (exists) return null;
        const seq = (this.db.prepare<[string], { n: number }>('SELECT count(*) AS n FROM fires WHERE campaign_id = ?').get(campaignId)?.n ?? 0) + 1;
        this.db
          .prepare("INSERT INTO fires (campaign_id, slot, seq, scheduled_at, started_at, status, late, cycles_json) VALUES (?, ?, ?, ?, ?, 'running', ?, ?)")
          .run(campaignId, key, seq, key, now.toISOString(), late ? 1 : 0, JSON.stringify(cycles));
        this.advance(campaignId, slot);
        if (cycles.length > 0) {
          const marks = cycles.map(() => '?').join(',');
          this.db.prepare(`UPDATE runs SET fire_slot = ? WHERE campaign_id = ? AND status != 'succeeded' AND cycle IN (${marks})`).run(key, campaignId, ...cycles);
        }
        this.manifest.note(campaignId, null, 'fire_started', { slot: key, seq, late, cycles, started_at: now.toISOString() });
        return this.fire(campaignId, key);
      })
      .immediate();
  }

  /** Slots passed over (missed with `missed: skip`): the cursor moves past them, the choice is logged. */
  skip(campaignId: string, slots: readonly Date[], more: boolean): void {
    const last = slots[slots.length - 1];
    if (!last) return;
    this.db
      .transaction(() => {
        this.advance(campaignId, last);
        this.manifest.note(campaignId, null, 'slots_skipped', {
          count: slots.length,
          more,
          first: slots[0]?.toISOString(),
          last: last.toISOString(),
          why: 'missed while the daemon was down or busy; schedule.missed is skip',
        });
      })
      .immediate();
  }

  private advance(campaignId: string, slot: Date): void {
    this.db.prepare('UPDATE daemons SET cursor_at = ? WHERE campaign_id = ? AND cursor_at < ?').run(slot.toISOString(), campaignId, slot.toISOString());
  }

  end(campaignId: string, slot: string, now: Date, status: Exclude<FireStatus, 'running'>, error: string | null): void {
    this.db
      .transaction(() => {
        this.db.prepare('UPDATE fires SET status = ?, ended_at = ?, error = ? WHERE campaign_id = ? AND slot = ?').run(status, now.toISOString(), error, campaignId, slot);
        this.manifest.note(campaignId, null, 'fire_ended', { slot, status, error });
      })
      .immediate();
  }

  fire(campaignId: string, slot: string): FireRow | null {
    const r = this.db.prepare<[string, string], RawFire>('SELECT * FROM fires WHERE campaign_id = ? AND slot = ?').get(campaignId, slot);
    return r ? toFire(r) : null;
  }

  fires(campaignId: string): FireRow[] {
    return this.db.prepare<[string], RawFire>('SELECT * FROM fires WHERE campaign_id = ? ORDER BY seq').all(campaignId).map(toFire);
  }

  /** Fires that did not end (killed daemon) or were interrupted: their cycles are finished first. */
  unfinished(campaignId: string): FireRow[] {
    return this.db.prepare<[string], RawFire>("SELECT * FROM fires WHERE campaign_id = ? AND status IN ('running','interrupted') ORDER BY seq").all(campaignId).map(toFire);
  }

  /** Runs not yet done (pending or interrupted; failed runs are final for the schedule). */
  unfinishedRuns(campaignId: string): Array<{ position: number; cycle: number }> {
    return this.db
      .prepare<[string], { position: number; cycle: number }>("SELECT position, cycle FROM runs WHERE campaign_id = ? AND status IN ('pending','interrupted','running') ORDER BY position")
      .all(campaignId);
  }

  /** Per run of the campaign: the fire it belongs to, with scheduled and actual start. */
  runFires(campaignId: string): Array<{ position: number; cycle: number; status: string; fireSlot: string | null; startedAt: string | null }> {
    return this.db
      .prepare<[string], { position: number; cycle: number; status: string; fire_slot: string | null; started_at: string | null }>(
        'SELECT position, cycle, status, fire_slot, started_at FROM runs WHERE campaign_id = ? ORDER BY position',
      )
      .all(campaignId)
      .map((r) => ({ position: r.position, cycle: r.cycle, status: r.status, fireSlot: r.fire_slot, startedAt: r.started_at }));
  }
}
