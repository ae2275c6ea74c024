/**
 * Measured windows per device: every ingested result's window (recorded results and completed
 * orphans' results alike), so an attempt measured while another measurement ran on the same device
 * can be found and flagged `overlapping_window`. Times are stored as ISO-8601 UTC with milliseconds
 * (one format, so text comparison is time comparison).
 */
import type { Db } from './db.js';

export interface WindowRow {
  campaignId: string;
  position: number;
  attempt: number;
  device: string;
  startedAt: string;
  endedAt: string;
}

interface RawWindow {
  campaign_id: string;
  position: number;
  attempt: number;
  device: string;
  started_at: string;
  ended_at: string;
}

const toWindow = (r: RawWindow): WindowRow => ({
  campaignId: r.campaign_id,
  position: r.position,
  attempt: r.attempt,
  device: r.device,
  startedAt: r.started_at,
  endedAt: r.ended_at,
});

/** An ISO timestamp in the stored form, or null when it is not a time. */
export function normaliseTime(iso: string): string | null {
  const ms = Date.parse(iso);
  return Number.isFinite(ms) ? new Date(ms).toISOString() : null;
}

/** Records one attempt's window on each of its devices; a window already recorded is kept as it is. */
export function insertWindows(db: Db, w: { campaignId: string; position: number; attempt: number; devices: readonly string[]; startedAt: string; endedAt: string }): number {
  const start = normaliseTime(w.startedAt);
  const end = normaliseTime(w.endedAt);
  if (start === null || end === null) return 0;
  const stmt = db.prepare('INSERT OR IGNORE INTO windows (campaign_id, position, attempt, device, started_at, ended_at) VALUES (?, ?, ?, ?, ?, ?)');
  let n = 0;
  for (const device of new Set(w.devices)) n += stmt.run(w.campaignId, w.position, w.attempt, device, start, end).changes;
  return n;
}

/**
 * Windows of other attempts (any campaign in this manifest) that overlap this attempt's recorded
 * windows on the same device. Touching edges (one ends exactly when the other starts) do not overlap.
 */
export function overlappingWindows(db: Db, campaignId: string, position: number, attempt: number): WindowRow[] {
  return db
    .prepare<[string, number, number], RawWindow>(
      `SELECT o.* FROM windows w JOIN windows o
         ON o.device = w.device AND o.started_at < w.ended_at AND o.ended_at > w.started_at
        AND NOT (o.campaign_id = w.campaign_id AND o.position = w.position AND o.attempt = w.attempt)
       WHERE w.campaign_id = ? AND w.position = ? AND w.attempt = ?
       ORDER BY o.started_at, o.campaign_id, o.position, o.attempt, o.device`,
    )
    .all(campaignId, position, attempt)
    .map(toWindow);
}

export function windowsOf(db: Db, campaignId: string): WindowRow[] {
  return db
    .prepare<[string], RawWindow>('SELECT * FROM windows WHERE campaign_id = ? ORDER BY position, attempt, device')
    .all(campaignId)
    .map(toWindow);
}
