/** Measured windows per device in the manifest, the overlap query, and the overlapping_window flag on ingest (real SQLite). */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { checkWindow, OVERLAP_FLAG } from '../../src/campaign/windows.js';
import type { CampaignSettings } from '../../src/config/campaign.js';
import { ExperimentConfig } from '../../src/config/experiment.js';
import { Manifest, runId } from '../../src/manifest/manifest.js';
import { countRuns, isUsed } from '../../src/results/aggregate.js';
import { campaignRecords } from '../../src/results/records.js';
import { parseResult } from '../../src/contract/result-parse.js';
import type { Result } from '../../src/contract/result.js';
import { systemClock } from '../../src/util/clock.js';
import { ROOT, tempDir } from '../helpers/cli.js';

const settings: CampaignSettings = { cycles: 2, structure: 'interleaved', seed: 1, thermal_gap: 0, runtime: 'local', force_cold_start: false, retries: 0, keep_services: false };
const exp = { id: 'e1', name: 'e1', backend: 'calibration' as const, config: ExperimentConfig.parse({ backend: 'calibration' }) };

let open: Manifest[] = [];
afterEach(() => {
  for (const m of open) m.close();
  open = [];
});

function fresh(campaigns: string[] = ['c1']): Manifest {
  const m = Manifest.open(join(tempDir(), 'lem.db'), systemClock);
  open.push(m);
  for (const id of campaigns) {
    m.createCampaign({
      id,
      name: id,
      sourcePath: 'c.yaml',
      settings,
      notes: [],
      experiments: [exp],
      runs: [
        { position: 0, experimentId: 'e1', cycle: 1 },
        { position: 1, experimentId: 'e1', cycle: 2 },
      ],
    });
  }
  return m;
}

const at = (s: number): string => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();

/** A real v3 calibration result (from the worker) for a run, with a window and device lock set. */
function result(campaignId: string, position: number, attempt: number, from: number, to: number, gates: string[] = []): Result {
  const devices = ['cpu'];
  const doc = JSON.parse(readFileSync(join(ROOT, 'test', 'results-schema', 'fixtures', 'calibration-v3-cpu.json'), 'utf8')) as Record<string, unknown>;
  Object.assign(doc, { run_id: runId(campaignId, position), experiment_id: 'e1', cycle: position + 1, attempt });
  doc['window'] = { ...(doc['window'] as object), started_at: at(from), ended_at: at(to) };
  doc['device_lock'] = { devices, waited_s: 0, waited_for: null };
  doc['validation'] = { ...(doc['validation'] as object), flags: gates.map((gate) => ({ gate, severity: 'warn', detail: 'test' })) };
  const parsed = parseResult(doc);
  if (!parsed.ok) throw new Error(parsed.reason);
  return parsed.result;
}

/** What the runner does on ingest: record the window, decide the flags, record the run. */
function ingest(m: Manifest, campaignId: string, position: number, attempt: number, r: Result): string[] {
  m.markRunning(campaignId, position, attempt, `lem-${campaignId}-p${position}-a${attempt}`);
  const flags = checkWindow(m, campaignId, position, attempt, r, r.validation.flags.map((f) => f.gate));
  m.markSucceeded(campaignId, position, attempt, { resultPath: `/r/${campaignId}/${position}`, metrics: { x: position + 1 }, flags, exitCode: 0 });
  return flags;
}

describe('measured windows', () => {
  it('finds windows of other attempts that overlap on the same device, not touching or other-device ones', () => {
    const m = fresh();
    m.recordWindows('c1', 0, 1, { devices: ['GPU-a', 'GPU-b'], startedAt: at(10), endedAt: at(20) });
    m.recordWindows('c1', 1, 1, { devices: ['GPU-b'], startedAt: at(15), endedAt: at(25) }); // overlaps on GPU-b
    m.recordWindows('c1', 1, 2, { devices: ['GPU-a'], startedAt: at(20), endedAt: at(30) }); // touches: no overlap
    m.recordWindows('c1', 1, 3, { devices: ['GPU-c'], startedAt: at(12), endedAt: at(18) }); // other device
    expect(m.overlappingWindows('c1', 0, 1).map((w) => [w.position, w.attempt, w.device])).toEqual([[1, 1, 'GPU-b']]);
    expect(m.overlappingWindows('c1', 1, 1).map((w) => [w.position, w.attempt, w.device])).toEqual([[0, 1, 'GPU-b']]);
    expect(m.overlappingWindows('c1', 1, 2)).toEqual([]);
    expect(m.overlappingWindows('c1', 1, 3)).toEqual([]);
  });

  it('stores times in one format (a window recorded twice is kept once)', () => {
    const m = fresh();
    expect(m.recordWindows('c1', 0, 1, { devices: ['cpu'], startedAt: '2026-01-01T00:00:10Z', endedAt: '2026-01-01T00:00:20.5Z' })).toBe(1);
    expect(m.recordWindows('c1', 0, 1, { devices: ['cpu'], startedAt: at(10), endedAt: at(20) })).toBe(0);
    expect(m.windows('c1')).toEqual([{ campaignId: 'c1', position: 0, attempt: 1, device: 'cpu', startedAt: at(10), endedAt: '2026-01-01T00:00:20.500Z' }]);
    // A window at 00:00:20.400 overlaps one ending at 00:00:20.500 (text order = time order).
    m.recordWindows('c1', 1, 1, { devices: ['cpu'], startedAt: '2026-01-01T00:00:20.4Z', endedAt: at(40) });
    expect(m.overlappingWindows('c1', 1, 1)).toHaveLength(1);
  });

  it('flags both overlapping runs on ingest, across campaigns, and --exclude-flagged leaves them out', () => {
    const m = fresh(['c1', 'c2']);
    expect(ingest(m, 'c1', 0, 1, result('c1', 0, 1, 0, 10))).not.toContain(OVERLAP_FLAG);
    // c2 measured the same device while c1's run 0 was measuring.
    expect(ingest(m, 'c2', 0, 1, result('c2', 0, 1, 5, 15, ['window_too_short']))).toContain(OVERLAP_FLAG);
    expect(m.run('c1', 0)?.flags).toContain(OVERLAP_FLAG);
    expect(m.events('c1').filter((e) => e.kind === 'run_flagged').map((e) => e.detail)).toEqual([
      expect.objectContaining({ attempt: 1, flag: OVERLAP_FLAG, device: 'cpu', overlaps: { campaign_id: 'c2', position: 0, attempt: 1 } }),
    ]);
    // A window after both: clean.
    expect(ingest(m, 'c1', 1, 1, result('c1', 1, 1, 20, 30))).not.toContain(OVERLAP_FLAG);
    // The result's own gates are kept beside the new flag.
    expect(m.run('c2', 0)?.flags).toEqual(['window_too_short', OVERLAP_FLAG]);

    const runs = campaignRecords(m, 'c1').runs;
    expect(countRuns(runs, true)).toMatchObject({ succeeded: 2, flagged: 1, used: 2 });
    expect(countRuns(runs, false)).toMatchObject({ succeeded: 2, flagged: 1, flaggedExcluded: 1, used: 1 });
    expect(runs.filter((r) => isUsed(r, false)).map((r) => r.runId)).toEqual([runId('c1', 1)]);
  });

  it('a result without window times or devices (older workers) records nothing and is not flagged', () => {
    const m = fresh();
    const r = result('c1', 0, 1, 0, 10);
    delete r.device_lock;
    expect(checkWindow(m, 'c1', 0, 1, r, [])).toEqual([]);
    expect(m.windows('c1')).toEqual([]);
  });

  it('records the attempt token before dispatch, and sees other live campaigns', () => {
    const m = fresh(['c1', 'c2']);
    m.markRunning('c1', 0, 1, 'lem-c1-p0-a1');
    expect(m.run('c1', 0)?.attemptToken).toBe('lem-c1-p0-a1');
    expect(m.events('c1').find((e) => e.kind === 'run_started')?.detail).toEqual({ attempt: 1, attempt_token: 'lem-c1-p0-a1' });
    m.claim('c2');
    expect(m.liveCampaigns('c1').map((c) => c.id)).toEqual(['c2']);
    expect(m.liveCampaigns('c2')).toEqual([]);
    m.release('c2', 'completed');
    expect(m.liveCampaigns('c1')).toEqual([]);
  });
});
