/**
 * Schedule arithmetic, pure: the slots of a campaign's `schedule:` (cron via croner, or daily `at`
 * times) in its time zone, which slots are due or were missed at a given clock value, and when the
 * schedule has ended. No clock, no I/O: the daemon passes `now` in, tests pass a fake one.
 *
 * Daylight-saving time is croner's: a daily slot inside the skipped spring-forward hour (02:30 on
 * the day clocks jump 02:00 → 03:00) fires once, at 03:00 local; a daily slot inside the doubled
 * autumn hour fires once, at its first occurrence. A sub-hourly cron fires in both autumn hours
 * (they are different instants).
 */
import { Cron } from 'croner';
import type { Schedule } from '../config/campaign.js';

/** The time zone the host's clock is in (used when a schedule gives none). */
export function hostTimezone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone;
}

/** The cron patterns of a schedule: its cron, or one per `at` time ("HH:MM[:SS]" → "S M H * * *"). */
export function cronPatterns(s: Schedule): string[] {
  if (s.cron !== undefined) return [s.cron];
  return (s.at ?? []).map((t) => {
    const [h, m, sec] = t.split(':');
    return `${Number(sec ?? 0)} ${Number(m)} ${Number(h)} * * *`;
  });
}

export class ScheduleMath {
  private readonly crons: Cron[];
  readonly timezone: string;
  private readonly until: Date | null;

  constructor(
    readonly spec: Schedule,
    defaultTimezone: string = hostTimezone(),
  ) {
    this.timezone = spec.timezone ?? defaultTimezone;
    this.crons = cronPatterns(spec).map((p) => new Cron(p, { paused: true, timezone: this.timezone }));
    this.until = spec.until ? new Date(spec.until) : null;
  }

  /** The first slot strictly after `after`, or null when the schedule has none left (until). */
  next(after: Date): Date | null {
    let best: Date | null = null;
    for (const c of this.crons) {
      const n = c.nextRun(after);
      if (n && n.getTime() > after.getTime() && (!best || n.getTime() < best.getTime())) best = n;
    }
    if (best && this.until && best.getTime() > this.until.getTime()) return null;
    return best;
  }

  /** Slots in (after, upTo], oldest first, at most `limit` of them (and whether more were left out). */
  between(after: Date, upTo: Date, limit = 10_000): { slots: Date[]; more: boolean } {
    const slots: Date[] = [];
    let cursor = after;
    for (;;) {
      const n = this.next(cursor);
      if (!n || n.getTime() > upTo.getTime()) return { slots, more: false };
      if (slots.length >= limit) return { slots, more: true };
      slots.push(n);
      cursor = n;
    }
  }

  /**
   * How late a slot may start and still count as on time: a minute, or half the gap to the slot
   * after it when the schedule is denser (a 5-second cron tolerates 2.5 s).
   */
  graceMs(slot: Date): number {
    const following = this.next(slot);
    const half = following ? (following.getTime() - slot.getTime()) / 2 : Infinity;
    return Math.min(60_000, half);
  }
}

export type Decision =
  /** The schedule is over: the daemon ends the campaign and exits 0. */
  | { kind: 'end'; reason: 'all_cycles_done' | 'max_fires_reached' | 'until_reached' }
  /** Slots that passed while nothing fired them (daemon down or busy), and what to do with each. */
  | { kind: 'missed'; slots: Date[]; more: boolean; action: 'skip' | 'run_late' }
  /** Fire this slot now (it is due and on time). */
  | { kind: 'fire'; slot: Date; late: boolean }
  /** Nothing due: sleep until `slot`. */
  | { kind: 'wait'; slot: Date };

export interface ScheduleState {
  /** The latest slot already fired or skipped, or the moment the schedule started. */
  cursor: Date;
  /** Fires run so far (skipped slots do not count). */
  firesDone: number;
  /** Cycles with runs still to do. */
  cyclesLeft: number;
  now: Date;
}

/** What the daemon does next, from the schedule and its state at `now`. */
export function decide(math: ScheduleMath, st: ScheduleState): Decision {
  if (st.cyclesLeft <= 0) return { kind: 'end', reason: 'all_cycles_done' };
  const max = math.spec.max_fires;
  if (max !== undefined && st.firesDone >= max) return { kind: 'end', reason: 'max_fires_reached' };
  const due = math.between(st.cursor, st.now, 10_000);
  if (due.slots.length > 0) {
    const latest = due.slots[due.slots.length - 1] as Date;
    const latestOnTime = st.now.getTime() - latest.getTime() <= math.graceMs(latest);
    const missed = latestOnTime ? due.slots.slice(0, -1) : due.slots;
    if (missed.length > 0) return { kind: 'missed', slots: missed, more: due.more, action: math.spec.missed };
    return { kind: 'fire', slot: latest, late: false };
  }
  const next = math.next(st.cursor);
  if (!next) return { kind: 'end', reason: 'until_reached' };
  return { kind: 'wait', slot: next };
}

/**
 * The cycles a fire runs: the next `count` cycles with runs still to do, in the planner's order
 * (by the position of their first unfinished run).
 */
export function nextCycles(unfinished: ReadonlyArray<{ position: number; cycle: number }>, count: number): number[] {
  const first = new Map<number, number>();
  for (const r of unfinished) {
    const p = first.get(r.cycle);
    if (p === undefined || r.position < p) first.set(r.cycle, r.position);
  }
  return [...first.entries()]
    .sort((a, b) => a[1] - b[1])
    .slice(0, count)
    .map(([cycle]) => cycle);
}
