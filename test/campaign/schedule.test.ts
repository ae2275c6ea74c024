/** Schedule arithmetic against a fake clock: cron and `at` slots, time zones, DST, missed slots, ends. */
import { describe, expect, it } from 'vitest';
import { Schedule } from '../../src/config/campaign.js';
import { decide, nextCycles, ScheduleMath } from '../../src/campaign/schedule.js';

const math = (s: Record<string, unknown>, tz = 'UTC'): ScheduleMath => new ScheduleMath(Schedule.parse(s), tz);
const iso = (d: Date | null): string | null => (d ? d.toISOString() : null);

describe('schedule slots', () => {
  it('a seconds-level cron gives slots five seconds apart', () => {
    const m = math({ cron: '*/5 * * * * *' });
    const { slots } = m.between(new Date('2026-01-01T00:00:00Z'), new Date('2026-01-01T00:00:16Z'));
    expect(slots.map(iso)).toEqual(['2026-01-01T00:00:05.000Z', '2026-01-01T00:00:10.000Z', '2026-01-01T00:00:15.000Z']);
  });

  it('`at` times are daily slots in the schedule time zone', () => {
    const m = math({ at: ['02:00', '14:00'], timezone: 'America/New_York' });
    const { slots } = m.between(new Date('2026-01-10T00:00:00Z'), new Date('2026-01-11T12:00:00Z'));
    // 02:00 and 14:00 EST are 07:00 and 19:00 UTC.
    expect(slots.map(iso)).toEqual(['2026-01-10T07:00:00.000Z', '2026-01-10T19:00:00.000Z', '2026-01-11T07:00:00.000Z']);
  });

  it('the host time zone applies when the schedule gives none', () => {
    const m = new ScheduleMath(Schedule.parse({ at: ['12:00'] }), 'Asia/Tokyo');
    expect(iso(m.next(new Date('2026-05-01T00:00:00Z')))).toBe('2026-05-01T03:00:00.000Z');
  });

  it('spring forward: a 02:30 slot on the day 02:00-03:00 does not exist fires once, at 03:00 local', () => {
    const m = math({ at: ['02:30'], timezone: 'Europe/Berlin' });
    const { slots } = m.between(new Date('2026-03-28T12:00:00Z'), new Date('2026-03-30T12:00:00Z'));
    // 29 March 2026: CET→CEST at 01:00 UTC. 02:30 local does not exist; the slot is 03:00 CEST = 01:00 UTC.
    expect(slots.map(iso)).toEqual(['2026-03-29T01:00:00.000Z', '2026-03-30T00:30:00.000Z']);
  });

  it('autumn: a 02:30 slot in the doubled hour fires once that day', () => {
    const m = math({ at: ['02:30'], timezone: 'Europe/Berlin' });
    const { slots } = m.between(new Date('2026-10-24T12:00:00Z'), new Date('2026-10-26T12:00:00Z'));
    // 25 October 2026: 02:30 CEST (00:30 UTC) and 02:30 CET (01:30 UTC) both exist; one fire.
    expect(slots.map(iso)).toEqual(['2026-10-25T00:30:00.000Z', '2026-10-26T01:30:00.000Z']);
  });

  it('autumn: a half-hourly cron fires in both of the doubled hours (distinct instants, never the same one twice)', () => {
    const m = math({ cron: '0 */30 * * * *', timezone: 'Europe/Berlin' });
    const { slots } = m.between(new Date('2026-10-24T23:59:00Z'), new Date('2026-10-25T02:01:00Z'));
    expect(slots.map(iso)).toEqual([
      '2026-10-25T00:00:00.000Z',
      '2026-10-25T00:30:00.000Z',
      '2026-10-25T01:00:00.000Z',
      '2026-10-25T01:30:00.000Z',
      '2026-10-25T02:00:00.000Z',
    ]);
    expect(new Set(slots.map(iso)).size).toBe(slots.length);
  });

  it('until ends the schedule', () => {
    const m = math({ cron: '0 * * * *', until: '2026-01-01T02:30:00Z' });
    expect(iso(m.next(new Date('2026-01-01T01:10:00Z')))).toBe('2026-01-01T02:00:00.000Z');
    expect(m.next(new Date('2026-01-01T02:00:00Z'))).toBeNull();
  });
});

describe('decide', () => {
  const base = { firesDone: 0, cyclesLeft: 3 };
  it('waits for the next slot, then fires it when due', () => {
    const m = math({ cron: '*/5 * * * * *' });
    const cursor = new Date('2026-01-01T00:00:00Z');
    expect(decide(m, { ...base, cursor, now: new Date('2026-01-01T00:00:01Z') })).toEqual({ kind: 'wait', slot: new Date('2026-01-01T00:00:05Z') });
    expect(decide(m, { ...base, cursor, now: new Date('2026-01-01T00:00:05.2Z') })).toEqual({ kind: 'fire', slot: new Date('2026-01-01T00:00:05Z'), late: false });
  });

  it('slots missed while down are reported with the configured action; the current slot fires on time', () => {
    const cursor = new Date('2026-01-01T00:00:00Z');
    const now = new Date('2026-01-01T03:00:10Z');
    for (const missed of ['skip', 'run_late'] as const) {
      const m = math({ cron: '0 * * * *', missed });
      const d = decide(m, { ...base, cursor, now });
      expect(d).toEqual({ kind: 'missed', slots: [new Date('2026-01-01T01:00:00Z'), new Date('2026-01-01T02:00:00Z')], more: false, action: missed });
      // Once those are dealt with (cursor moved past them), the 03:00 slot is on time (10 s late < 1 min grace).
      expect(decide(m, { ...base, cursor: new Date('2026-01-01T02:00:00Z'), now })).toEqual({ kind: 'fire', slot: new Date('2026-01-01T03:00:00Z'), late: false });
    }
  });

  it('a slot later than its grace is missed, not fired on time', () => {
    const m = math({ cron: '*/5 * * * * *' });
    const d = decide(m, { ...base, cursor: new Date('2026-01-01T00:00:00Z'), now: new Date('2026-01-01T00:00:08Z') });
    expect(d).toMatchObject({ kind: 'missed', slots: [new Date('2026-01-01T00:00:05Z')] });
  });

  it('ends when cycles are done, max_fires is reached, or until has passed', () => {
    const now = new Date('2026-01-01T00:00:00Z');
    expect(decide(math({ cron: '* * * * *' }), { cursor: now, now, firesDone: 1, cyclesLeft: 0 })).toEqual({ kind: 'end', reason: 'all_cycles_done' });
    expect(decide(math({ cron: '* * * * *', max_fires: 3 }), { cursor: now, now, firesDone: 3, cyclesLeft: 2 })).toEqual({ kind: 'end', reason: 'max_fires_reached' });
    expect(decide(math({ cron: '* * * * *', max_fires: 3 }), { cursor: now, now, firesDone: 2, cyclesLeft: 2 }).kind).toBe('wait');
    expect(decide(math({ cron: '* * * * *', until: '2025-12-31T00:00:00Z' }), { cursor: now, now, firesDone: 0, cyclesLeft: 2 })).toEqual({ kind: 'end', reason: 'until_reached' });
  });
});

describe('nextCycles', () => {
  it('takes the next cycles in planner order, by their first unfinished run', () => {
    const runs = [
      { position: 4, cycle: 3 },
      { position: 2, cycle: 2 },
      { position: 3, cycle: 2 },
      { position: 6, cycle: 4 },
    ];
    expect(nextCycles(runs, 1)).toEqual([2]);
    expect(nextCycles(runs, 2)).toEqual([2, 3]);
    expect(nextCycles([], 2)).toEqual([]);
  });
});

describe('schedule config', () => {
  it('refuses a bad cron, an unknown time zone, and cron with at', () => {
    expect(Schedule.safeParse({ cron: 'every day' }).success).toBe(false);
    expect(Schedule.safeParse({ cron: '* * * * *', timezone: 'Mars/Olympus' }).success).toBe(false);
    expect(Schedule.safeParse({ cron: '* * * * *', at: ['02:00'] }).success).toBe(false);
    expect(Schedule.safeParse({ at: ['25:00'] }).success).toBe(false);
    expect(Schedule.parse({ at: ['02:00'] })).toMatchObject({ cycles_per_fire: 1, missed: 'skip' });
  });
});
