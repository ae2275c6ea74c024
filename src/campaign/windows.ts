/**
 * Measured windows on ingest: every ingested result's window is recorded per device in the
 * manifest, and a result whose window overlaps another attempt's on the same device (any campaign
 * in this manifest; an orphan left by a killed orchestrator, a second campaign on the same host)
 * gets the validation flag `overlapping_window` (severity fail), as does the recorded run it
 * overlapped. Flags are kept and counted, never dropped; `--exclude-flagged` leaves them out.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { runId, type Manifest, type RunRow } from '../manifest/manifest.js';
import { ingestResultFile } from '../contract/ingest.js';
import type { Result } from '../contract/result.js';

export const OVERLAP_FLAG = 'overlapping_window';

/** The measured window of a result on its locked devices, or null when the result does not say (older workers). */
export function resultWindow(r: Result): { devices: string[]; startedAt: string; endedAt: string } | null {
  const devices = r.device_lock?.devices ?? [];
  const startedAt = r.window?.started_at;
  const endedAt = r.window?.ended_at;
  if (devices.length === 0 || startedAt === undefined || endedAt === undefined) return null;
  return { devices, startedAt, endedAt };
}

/**
 * Records an ingested result's window and returns the flags the run is to be stored with: the
 * result's own, plus `overlapping_window` when another attempt measured one of its devices at the
 * same time. Recorded runs it overlaps are flagged too.
 */
export function checkWindow(manifest: Manifest, campaignId: string, position: number, attempt: number, result: Result, flags: readonly string[]): string[] {
  const w = resultWindow(result);
  if (w === null) return [...flags];
  manifest.recordWindows(campaignId, position, attempt, w);
  return flagOverlaps(manifest, campaignId, position, attempt) ? [...new Set([...flags, OVERLAP_FLAG])] : [...flags];
}

/** Flags every recorded run whose window overlaps this attempt's; true when there was any overlap. */
function flagOverlaps(manifest: Manifest, campaignId: string, position: number, attempt: number): boolean {
  const others = manifest.overlappingWindows(campaignId, position, attempt);
  for (const o of others) {
    manifest.addFlag(o.campaignId, o.position, o.attempt, OVERLAP_FLAG, {
      device: o.device,
      overlaps: { campaign_id: campaignId, position, attempt },
    });
  }
  return others.length > 0;
}

/**
 * After a crash: result files that completed workers wrote under the campaign's run directories
 * but that were never recorded (orphans of a killed orchestrator) still measured their devices.
 * Record their windows, and flag recorded runs they overlapped. Returns how many were found.
 */
export function recordOrphanWindows(manifest: Manifest, campaignId: string, dirOf: (run: RunRow, attempt: number) => string): number {
  const known = new Set(manifest.windows(campaignId).map((w) => `${w.position}:${w.attempt}`));
  let found = 0;
  for (const run of manifest.runs(campaignId)) {
    for (let a = 1; a <= run.attempt; a++) {
      if (known.has(`${run.position}:${a}`) || (run.status === 'succeeded' && a === run.attempt)) continue;
      const path = join(dirOf(run, a), 'result.json');
      if (!existsSync(path)) continue;
      const ingested = ingestResultFile(path, { runId: runId(campaignId, run.position), experimentId: run.experimentId, cycle: run.cycle, attempt: a });
      const w = ingested.ok ? resultWindow(ingested.result) : null;
      if (w === null) continue;
      if (manifest.recordWindows(campaignId, run.position, a, w) > 0) {
        found++;
        flagOverlaps(manifest, campaignId, run.position, a);
      }
    }
  }
  return found;
}
