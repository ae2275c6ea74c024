/**
 * The scheduled daemon in real time, through the CLI: a seconds-level cron with max_fires: 3 fires
 * three cycles and exits 0; one daemon per campaign; `campaign status` reads while it writes; and
 * kill -9 at seeded random moments across fires, restarted each time, never fires a slot twice.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { createRng } from '../../src/util/random.js';
import { lem, lemKillAt, lemSpawn, ROOT, tempDir, workersUnder } from '../helpers/cli.js';

const SCHEDULED = join(ROOT, 'test', 'fixtures', 'campaigns', 'scheduled.yaml');

interface FireDb {
  slot: string;
  seq: number;
  started_at: string;
  status: string;
  cycles_json: string;
}

function readDb(state: string) {
  const db = new Database(join(state, 'lem.db'), { readonly: true });
  const fires = db.prepare('SELECT slot, seq, started_at, status, cycles_json FROM fires ORDER BY seq').all() as FireDb[];
  const runs = db.prepare('SELECT position, cycle, status, fire_slot, started_at FROM runs ORDER BY position').all() as Array<{ position: number; cycle: number; status: string; fire_slot: string | null; started_at: string | null }>;
  const events = db.prepare('SELECT position, kind, detail_json FROM events ORDER BY seq').all() as Array<{ position: number | null; kind: string; detail_json: string }>;
  db.close();
  return { fires, runs, events };
}

describe('lem daemon run (real time)', () => {
  it('a */5-second cron with max_fires: 3 fires three cycles at their slots and exits 0; a second daemon is refused; status reads meanwhile', async () => {
    const state = tempDir();
    const child = lemSpawn(['--state', state, 'daemon', 'run', SCHEDULED]);
    let stderr = '';
    let checked = false;
    let second: ReturnType<typeof lem> | null = null;
    let status: ReturnType<typeof lem> | null = null;
    let daemonStatus: ReturnType<typeof lem> | null = null;
    const code = await new Promise<number | null>((resolve) => {
      child.stderr?.on('data', (d: Buffer) => {
        stderr += d.toString();
        if (!checked && /fire #1:/.test(stderr)) {
          checked = true;
          // While the daemon writes: a second daemon of the same file is refused; status commands read.
          second = lem(['--state', state, 'daemon', 'run', SCHEDULED]);
          status = lem(['--state', state, 'campaign', 'status', '--json']);
          daemonStatus = lem(['--state', state, 'daemon', 'status', '--json']);
        }
      });
      child.once('exit', (c) => resolve(c));
    });
    expect(code, stderr).toBe(0);
    expect(stderr).toMatch(/schedule ended: max fires reached/);

    const s2 = second as unknown as ReturnType<typeof lem>;
    expect(s2.code).toBe(2);
    expect(s2.stderr).toMatch(new RegExp(`already has a daemon: process ${child.pid}`));
    expect((status as unknown as ReturnType<typeof lem>).code).toBe(0);
    const live = JSON.parse((daemonStatus as unknown as ReturnType<typeof lem>).stdout) as { daemon: { running: boolean; pid: number } };
    expect(live.daemon).toMatchObject({ running: true, pid: child.pid });

    const { fires, runs } = readDb(state);
    expect(fires.map((f) => f.status)).toEqual(['succeeded', 'succeeded', 'succeeded']);
    expect(fires.map((f) => JSON.parse(f.cycles_json) as number[])).toEqual([[1], [2], [3]]);
    // Slots are on the 5-second grid, distinct, and no fire started before its slot.
    for (const f of fires) {
      expect(new Date(f.slot).getUTCSeconds() % 5).toBe(0);
      expect(new Date(f.started_at).getTime()).toBeGreaterThanOrEqual(new Date(f.slot).getTime());
    }
    expect(new Set(fires.map((f) => f.slot)).size).toBe(3);
    // Each run records its fire (the scheduled start) and its actual start.
    for (const r of runs) {
      if (r.cycle <= 3) {
        expect(r.status).toBe('succeeded');
        expect(r.fire_slot).toBe(fires[r.cycle - 1]?.slot);
        expect(new Date(r.started_at as string).getTime()).toBeGreaterThanOrEqual(new Date(r.fire_slot as string).getTime());
      } else {
        expect(r).toMatchObject({ status: 'pending', fire_slot: null });
      }
    }

    const after = JSON.parse(lem(['--state', state, 'daemon', 'status', '--json']).stdout) as {
      fires_done: number;
      fires_left: number;
      next_fire: string | null;
      daemon: { running: boolean; end_reason: string };
      fires: Array<{ slot: string; runs: Array<{ cycle: number; scheduled_at: string; started_at: string }> }>;
    };
    expect(after).toMatchObject({ fires_done: 3, fires_left: 0, next_fire: null, daemon: { running: false, end_reason: 'max_fires_reached' } });
    expect(after.fires.map((f) => f.runs.map((r) => [r.cycle, r.scheduled_at]))).toEqual(fires.map((f, i) => [[i + 1, f.slot]]));
    const log = readFileSync(join(state, 'daemon', `${/campaign (scheduled-\S+):/.exec(stderr)?.[1]}.log`), 'utf8').trim().split('\n');
    expect(log.map((l) => (JSON.parse(l) as { event: string }).event)).toContain('fire_started');
  }, 90_000);
});

/** Starts `daemon run` and kill -9s it `delayMs` after its first fire starts (or lets it end). */
function startAndKill(state: string, file: string, delayMs: number): Promise<{ killed: boolean; code: number | null; stderr: string }> {
  return lemKillAt(['--state', state, 'daemon', 'run', file], {}, delayMs, (stderr) => /(fire #\d+:|finishing fire)/.test(stderr));
}

describe('daemon kill storm', () => {
  it('kill -9 five times across fires, restarted each time: no slot fires twice, no cycle runs in two fires, every fired cycle succeeds once', async () => {
    const state = tempDir();
    const file = join(state, 'storm.yaml');
    writeFileSync(
      file,
      readFileSync(SCHEDULED, 'utf8')
        .replace('campaign_name: scheduled', 'campaign_name: storm')
        .replace('cycles: 4', 'cycles: 10')
        .replace('cron: "*/5 * * * * *"', 'cron: "*/2 * * * * *"')
        .replace('max_fires: 3', 'max_fires: 8'),
    );
    // Each kill lands within 1.5 s of a fire's start, before the next 2-second slot, so a try uses up
    // at most one of the 8 fires and 5 kills always fit before the schedule ends.
    const rng = createRng('daemon-kill-storm');
    let kills = 0;
    let finishing = 0; // fires a restarted daemon said it finished for a killed one
    const finishedFires = (stderr: string): number => (stderr.match(/finishing fire #\d+/g) ?? []).length;
    for (let i = 0; i < 12 && kills < 5; i++) {
      const r = await startAndKill(state, file, rng.int(1500));
      finishing += finishedFires(r.stderr);
      if (r.killed) kills++;
      else if (r.code === 0) break;
    }
    expect(kills).toBe(5);
    const final = lem(['--state', state, 'daemon', 'run', file]);
    expect(final.code, final.stderr).toBe(0);
    finishing += finishedFires(final.stderr);

    const { fires, runs, events } = readDb(state);
    expect(fires).toHaveLength(8);
    expect(fires.every((f) => f.status === 'succeeded')).toBe(true);
    expect(new Set(fires.map((f) => f.slot)).size).toBe(8);
    // A slot is started once: one fire_started event per slot.
    const started = events.filter((e) => e.kind === 'fire_started').map((e) => (JSON.parse(e.detail_json) as { slot: string }).slot);
    expect(started.sort()).toEqual(fires.map((f) => f.slot).sort());
    // No cycle belongs to two fires; the fired cycles are exactly the succeeded runs, each recorded once.
    const cycles = fires.flatMap((f) => JSON.parse(f.cycles_json) as number[]);
    expect(new Set(cycles).size).toBe(cycles.length);
    expect(runs.filter((r) => r.status === 'succeeded').map((r) => r.cycle).sort()).toEqual([...cycles].sort());
    for (const r of runs.filter((x) => x.status === 'succeeded')) {
      expect(events.filter((e) => e.position === r.position && (e.kind === 'run_succeeded' || e.kind === 'run_recovered'))).toHaveLength(1);
    }
    // Each fire finished for a killed daemon is recorded in the manifest, not only in the daemon's log.
    expect(events.filter((e) => e.kind === 'fire_recovered')).toHaveLength(finishing);
    // The kills hit work in flight at least once (otherwise this proves little).
    expect(events.some((e) => e.kind === 'fire_recovered' || e.kind === 'run_interrupted' || e.kind === 'run_recovered')).toBe(true);
    expect(workersUnder(state)).toEqual([]);
  }, 180_000);
});

describe('lem daemon start / stop / status', () => {
  it('start detaches a daemon that holds the lock; a second start is refused; stop ends it cleanly', async () => {
    const state = tempDir();
    const started = lem(['--state', state, 'daemon', 'start', SCHEDULED]);
    expect(started.code, started.stderr).toBe(0);
    const pid = Number(/daemon started: pid (\d+)/.exec(started.stdout)?.[1]);
    expect(pid).toBeGreaterThan(0);
    const st = JSON.parse(lem(['--state', state, 'daemon', 'status', '--json']).stdout) as { daemon: { running: boolean; pid: number }; next_fire: string | null; fires_left: number; fires_done: number };
    expect(st.daemon).toMatchObject({ running: true, pid });
    expect(st.next_fire).not.toBeNull();
    expect(st.fires_done + st.fires_left).toBe(3);

    const again = lem(['--state', state, 'daemon', 'start', SCHEDULED]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(new RegExp(`already has a daemon: process ${pid}`));

    const stopped = lem(['--state', state, 'daemon', 'stop']);
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(stopped.stdout).toMatch(/stopped/);
    const after = JSON.parse(lem(['--state', state, 'daemon', 'status', '--json']).stdout) as { daemon: { running: boolean; end_reason: string } };
    expect(after.daemon).toMatchObject({ running: false, end_reason: 'stopped' });
    expect(workersUnder(state)).toEqual([]);
  }, 90_000);
});
