/**
 * LLenergyMeasure v1 `daemon:` → lem `schedule:` (run with `lem daemon run`).
 *
 * v1 wrote `daemon: {enabled, at: "HH:MM", interval: 24h, total_duration: 7d}`: first run at `at`,
 * then every `interval`, for `total_duration`. lem's schedule has daily times (`at`) or a cron
 * expression, and `max_fires`. An interval that divides a day becomes daily times from `at` (or a
 * cron step without `at`); total_duration / interval becomes max_fires. What has no exact lem
 * equivalent stays a comment, never an approximation.
 */
import { isRecord, type Conversion } from './types.js';

const UNIT_S: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };
const DAY_S = 86400;

/** Seconds in "90s", "30m", "24h", "7d" (or a bare number of seconds); null if not a duration. */
export function durationS(v: unknown): number | null {
  if (typeof v === 'number' && Number.isFinite(v) && v > 0) return v;
  if (typeof v !== 'string') return null;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([smhd])?\s*$/i.exec(v);
  if (!m) return null;
  const n = Number(m[1]) * (UNIT_S[(m[2] ?? 's').toLowerCase()] ?? 1);
  return n > 0 ? n : null;
}

function hhmm(totalS: number): string {
  const s = ((totalS % DAY_S) + DAY_S) % DAY_S;
  const h = Math.floor(s / 3600);
  const mi = Math.floor((s % 3600) / 60);
  return `${String(h).padStart(2, '0')}:${String(mi).padStart(2, '0')}`;
}

function atSeconds(at: unknown): number | null {
  if (typeof at !== 'string') return null;
  const m = /^([01]?\d|2[0-3]):([0-5]\d)$/.exec(at.trim());
  return m ? Number(m[1]) * 3600 + Number(m[2]) * 60 : null;
}

export function convertDaemon(c: Conversion, v: unknown): void {
  const reason = (why: string): void => {
    c.unmapped.push({ near: [], key: 'daemon', value: v, reason: why });
  };
  if (!isRecord(v)) return reason('not a mapping');
  if (v.enabled === false) return reason('the daemon was disabled (enabled: false); no schedule written');
  const interval = v.interval === undefined ? DAY_S : durationS(v.interval);
  if (interval === null) return reason(`interval ${JSON.stringify(v.interval)} is not a duration (e.g. 24h)`);
  const schedule: Record<string, unknown> = {};
  const start = v.at === undefined ? null : atSeconds(v.at);
  if (v.at !== undefined && start === null) return reason(`at ${JSON.stringify(v.at)} is not HH:MM`);
  if (start !== null) {
    if (DAY_S % interval !== 0 || interval % 60 !== 0) return reason(`an interval of ${String(v.interval)} from ${String(v.at)} is not a set of daily times; write schedule.cron by hand`);
    schedule.at = Array.from({ length: DAY_S / interval }, (_, k) => hhmm(start + k * interval)).sort();
  } else if (interval % 3600 === 0 && 24 % (interval / 3600) === 0) {
    schedule.cron = interval === DAY_S ? '0 0 * * *' : `0 */${interval / 3600} * * *`;
  } else if (interval < 3600 && interval % 60 === 0 && 60 % (interval / 60) === 0) {
    schedule.cron = `*/${interval / 60} * * * *`;
  } else return reason(`an interval of ${String(v.interval)} has no cron step; write schedule.cron by hand`);
  for (const [k, val] of Object.entries(v)) {
    if (k === 'enabled' || k === 'at' || k === 'interval') continue;
    if (k === 'total_duration') {
      const total = durationS(val);
      if (total === null) c.unmapped.push({ near: ['schedule'], key: 'daemon.total_duration', value: val, reason: 'not a duration (e.g. 7d)' });
      else schedule.max_fires = Math.max(1, Math.floor(total / interval));
    } else c.unmapped.push({ near: ['schedule'], key: `daemon.${k}`, value: val, reason: 'no lem schedule setting' });
  }
  c.settings.schedule = schedule;
  c.warnings.push('daemon: became schedule: — run it with `lem daemon run FILE` (or `lem daemon start FILE`), not `lem campaign run`');
}
