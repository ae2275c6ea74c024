/** LLenergyMeasure v1 `daemon:` → lem `schedule:` (src/config/convert/daemon.ts), pure. */
import { describe, expect, it } from 'vitest';
import { convertDaemon, durationS } from '../../src/config/convert/daemon.js';
import { emptyConversion } from '../../src/config/convert/types.js';
import { Schedule } from '../../src/config/campaign.js';

function run(daemon: unknown): ReturnType<typeof emptyConversion> {
  const c = emptyConversion('test');
  convertDaemon(c, daemon);
  return c;
}

describe('daemon → schedule', () => {
  it('reads durations in s/m/h/d and rejects what is not one', () => {
    expect([durationS('90s'), durationS('30m'), durationS('24h'), durationS('7d'), durationS(45)]).toEqual([90, 1800, 86400, 604800, 45]);
    for (const bad of ['', '3w', '-1h', 'soon', 0, null]) expect(durationS(bad)).toBeNull();
  });

  it('an interval that divides a day, from `at`, becomes sorted daily times; total/interval becomes max_fires', () => {
    const c = run({ at: '20:30', interval: '6h', total_duration: '3d' });
    expect(c.settings.schedule).toEqual({ at: ['02:30', '08:30', '14:30', '20:30'], max_fires: 12 });
    expect(Schedule.safeParse(c.settings.schedule).success).toBe(true);
  });

  it('without `at`, an hourly or minute step becomes a cron expression croner accepts', () => {
    for (const [interval, cron] of [['4h', '0 */4 * * *'], ['15m', '*/15 * * * *'], ['24h', '0 0 * * *']] as const) {
      const c = run({ interval });
      expect(c.settings.schedule).toEqual({ cron });
      expect(Schedule.safeParse(c.settings.schedule).success).toBe(true);
    }
  });

  it('what has no exact equivalent stays a comment, never an approximation', () => {
    for (const d of [{ at: '02:00', interval: '7h' }, { interval: '90m' }, { at: '25:00' }, { interval: 'weekly' }, { enabled: false, at: '02:00' }, 'nightly']) {
      const c = run(d);
      expect(c.settings.schedule).toBeUndefined();
      expect(c.unmapped.map((u) => u.key)).toEqual(['daemon']);
    }
    const c = run({ at: '02:00', notify: 'me@example.org' });
    expect(c.settings.schedule).toEqual({ at: ['02:00'] });
    expect(c.unmapped.map((u) => u.key)).toEqual(['daemon.notify']);
  });
});
