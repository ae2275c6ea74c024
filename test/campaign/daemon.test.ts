/**
 * The daemon's loop against a fake clock, a real manifest and the scripted runtime: fires at the
 * slots, ends at max_fires, runs missed slots late or skips them after a downtime (and logs the
 * choice), finishes a fire left in flight first, and never claims a slot twice.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runDaemon, type DaemonSink } from '../../src/campaign/daemon.js';
import { planRuns } from '../../src/campaign/planner.js';
import type { ProgressSink } from '../../src/campaign/runner.js';
import { Schedule, type CampaignSettings } from '../../src/config/campaign.js';
import { ExperimentConfig } from '../../src/config/experiment.js';
import { FireStore } from '../../src/manifest/fires.js';
import { Manifest } from '../../src/manifest/manifest.js';
import type { Clock } from '../../src/util/clock.js';
import { tempDir } from '../helpers/cli.js';
import { scriptedRuntime } from '../helpers/scripted-runtime.js';

const T0 = Date.UTC(2026, 0, 1, 0, 0, 10);
const quiet: ProgressSink = { note() {}, runStarted() {}, runEnded() {}, waiting() {} };

/** A fake clock; each dispatched run takes `runMs` of fake time. */
function fakeClock(start = T0): Clock & { advance(ms: number): void } {
  let t = 0;
  return {
    now: () => new Date(start + t),
    monotonicMs: () => t,
    sleep: async (ms) => {
      t += Math.max(0, ms);
    },
    advance: (ms) => {
      t += ms;
    },
  };
}

const manifests: Manifest[] = [];
afterEach(() => {
  for (const m of manifests.splice(0)) m.close();
});

function setup(schedule: Record<string, unknown>, cycles = 4) {
  const root = tempDir();
  const clock = fakeClock();
  const manifest = Manifest.open(join(root, 'lem.db'), clock);
  manifests.push(manifest);
  const settings: CampaignSettings = {
    cycles,
    structure: 'interleaved',
    seed: 1,
    thermal_gap: 0,
    runtime: 'local',
    force_cold_start: false,
    retries: 0,
    keep_services: false,
    schedule: Schedule.parse({ timezone: 'UTC', ...schedule }),
  };
  const exps = [{ id: 'e0', name: 'exp0', backend: 'calibration' as const, config: ExperimentConfig.parse({ backend: 'calibration' }) }];
  const runs = planRuns({ experimentIds: ['e0'], cycles, structure: 'interleaved', seed: 1 });
  manifest.createCampaign({ id: 'camp', name: 'camp', sourcePath: 'x.yaml', settings, notes: [], experiments: exps, runs });
  const events: string[] = [];
  const sink: DaemonSink = { event: (kind) => events.push(kind) };
  const runtime = scriptedRuntime(() => 'ok');
  const originalDispatch = runtime.dispatch.bind(runtime);
  runtime.dispatch = async (spec, signal, onStarted) => {
    clock.advance(60_000); // each run takes a minute
    return originalDispatch(spec, signal, onStarted);
  };
  const deps = { manifest, runtime: async () => runtime, clock, workspaceRoot: root, progress: quiet, sink, logPath: join(root, 'daemon.log') };
  return { manifest, clock, deps, events, runtime, store: new FireStore(manifest) };
}

describe('daemon loop (fake clock)', () => {
  it('fires each hourly slot with the next cycle and ends at max_fires', async () => {
    const { deps, store } = setup({ cron: '0 * * * *', max_fires: 3 });
    const outcome = await runDaemon('camp', deps, new AbortController().signal);
    expect(outcome).toMatchObject({ status: 'ended', reason: 'max_fires_reached', fires: 3 });
    const fires = store.fires('camp');
    expect(fires.map((f) => f.slot)).toEqual(['2026-01-01T01:00:00.000Z', '2026-01-01T02:00:00.000Z', '2026-01-01T03:00:00.000Z']);
    expect(fires.map((f) => f.cycles)).toEqual([[1], [2], [3]]);
    expect(fires.every((f) => f.status === 'succeeded' && !f.late)).toBe(true);
    const linked = store.runFires('camp');
    expect(linked.map((r) => r.fireSlot)).toEqual([...fires.map((f) => f.slot), null]);
    expect(store.daemon('camp')).toMatchObject({ pid: null, endReason: 'max_fires_reached' });
  });

  it('ends when every cycle is done, before max_fires', async () => {
    const { deps, store } = setup({ cron: '*/10 * * * *', max_fires: 10, cycles_per_fire: 2 }, 3);
    const outcome = await runDaemon('camp', deps, new AbortController().signal);
    expect(outcome).toMatchObject({ status: 'ended', reason: 'all_cycles_done', fires: 2 });
    expect(store.fires('camp').map((f) => f.cycles)).toEqual([[1, 2], [3]]);
  });

  for (const missed of ['run_late', 'skip'] as const) {
    it(`after a downtime, missed slots are ${missed === 'skip' ? 'skipped' : 'run late'} and the choice is logged`, async () => {
      const { deps, store, clock, manifest } = setup({ cron: '0 * * * *', max_fires: 3, missed });
      store.acquire('camp', clock.now(), 'x.log', 999_999_999, 'h'); // an earlier daemon…
      store.release('camp', clock.now(), { reason: 'stopped' }, 999_999_999); // …that stopped at T0
      clock.advance(2 * 3600_000 + 20 * 60_000); // down until 02:20:10: the 01:00 and 02:00 slots were missed
      const outcome = await runDaemon('camp', deps, new AbortController().signal);
      const fires = store.fires('camp');
      const kinds = manifest.events('camp').map((e) => e.kind);
      if (missed === 'run_late') {
        expect(fires.map((f) => [f.slot, f.late])).toEqual([
          ['2026-01-01T01:00:00.000Z', true],
          ['2026-01-01T02:00:00.000Z', true],
          ['2026-01-01T03:00:00.000Z', false],
        ]);
        expect(kinds).not.toContain('slots_skipped');
      } else {
        expect(fires.map((f) => [f.slot, f.late])).toEqual([
          ['2026-01-01T03:00:00.000Z', false],
          ['2026-01-01T04:00:00.000Z', false],
          ['2026-01-01T05:00:00.000Z', false],
        ]);
        const skipped = manifest.events('camp').find((e) => e.kind === 'slots_skipped');
        expect(skipped?.detail).toMatchObject({ count: 2, first: '2026-01-01T01:00:00.000Z', last: '2026-01-01T02:00:00.000Z' });
      }
      expect(outcome.reason).toBe('max_fires_reached');
    });
  }

  it('a fire left in flight is finished first and its slot is never claimed again', async () => {
    const { deps, store, clock, manifest } = setup({ cron: '0 * * * *', max_fires: 2 });
    store.acquire('camp', clock.now(), 'x.log', 999_999_999, 'h');
    clock.advance(3600_000 - 10_000);
    const fire = store.claim('camp', new Date('2026-01-01T01:00:00Z'), clock.now(), [1], false);
    expect(fire).not.toBeNull();
    manifest.markRunning('camp', 0, 1); // the daemon died with cycle 1's run in flight
    store.release('camp', clock.now(), { reason: null }, 999_999_999);
    expect(store.claim('camp', new Date('2026-01-01T01:00:00Z'), clock.now(), [1], false)).toBeNull();

    const outcome = await runDaemon('camp', deps, new AbortController().signal);
    expect(outcome.reason).toBe('max_fires_reached');
    const fires = store.fires('camp');
    expect(fires.map((f) => [f.slot, f.cycles, f.status])).toEqual([
      ['2026-01-01T01:00:00.000Z', [1], 'succeeded'],
      ['2026-01-01T02:00:00.000Z', [2], 'succeeded'],
    ]);
    const kinds = manifest.events('camp').map((e) => e.kind);
    expect(kinds).toContain('run_interrupted'); // recovered as resume does, then run again
    expect(manifest.runs('camp').map((r) => r.status)).toEqual(['succeeded', 'succeeded', 'pending', 'pending']);
  });

  it('one daemon per campaign: a live holder is named and refused', () => {
    const { store, clock } = setup({ cron: '0 * * * *' });
    store.acquire('camp', clock.now(), 'x.log');
    expect(() => store.acquire('camp', clock.now(), 'y.log', process.pid + 1)).toThrow(new RegExp(`already has a daemon: process ${process.pid} on `));
  });

  it('a SIGTERM while waiting stops cleanly and releases the lock', async () => {
    const { deps, store } = setup({ cron: '0 * * * *' });
    const ac = new AbortController();
    const sleep = deps.clock.sleep;
    deps.clock.sleep = async (ms, signal) => {
      ac.abort();
      return sleep(ms, signal);
    };
    const outcome = await runDaemon('camp', deps, ac.signal);
    expect(outcome).toMatchObject({ status: 'stopped', fires: 0, interruptedFire: false });
    expect(store.daemon('camp')).toMatchObject({ pid: null, endReason: 'stopped' });
  });

  it('a fire whose preflight fails (scripted probe) is recorded failed with its reason, runs nothing, and the daemon goes on', async () => {
    const { deps, store, manifest, events, runtime } = setup({ cron: '0 * * * *', max_fires: 3 });
    let probes = 0;
    runtime.probe = async () => {
      probes++;
      return probes === 1
        ? { ok: false, where: 'the scripted interpreter', problem: 'cannot start /gone/python3', fix: 'set LEM_PYTHON' }
        : { ok: true, where: 'the scripted interpreter', report: null, note: 'scripted: not asked' };
    };
    const outcome = await runDaemon('camp', deps, new AbortController().signal);
    expect(outcome).toMatchObject({ status: 'ended', reason: 'max_fires_reached', fires: 3 });
    const fires = store.fires('camp');
    expect(fires.map((f) => f.status)).toEqual(['failed', 'succeeded', 'succeeded']);
    expect(fires[0]?.error).toBe('preflight failed, no run started: calibration: cannot start /gone/python3 (fix: set LEM_PYTHON)');
    // the failed fire ran nothing: its cycle is run by the next fire
    expect(fires.map((f) => f.cycles)).toEqual([[1], [1], [2]]);
    expect(manifest.counts('camp')).toMatchObject({ succeeded: 2, failed: 0 });
    const noted = manifest.events('camp').filter((e) => e.kind === 'fire_preflight_failed');
    expect(noted).toHaveLength(1);
    expect(noted[0]?.detail).toMatchObject({ slot: fires[0]?.slot, problems: [{ backend: 'calibration', message: 'cannot start /gone/python3' }] });
    expect(events.filter((k) => k === 'fire_ended')).toHaveLength(3);
  });
});
