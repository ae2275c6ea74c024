/** `lem calibrate`: parse, run the use case (src/campaign/calibrate.ts), print the recommendation. */
import { resolve } from 'node:path';
import { calibrate } from '../../campaign/calibrate.js';
import type { RuntimeName } from '../../config/campaign.js';
import { createRuntime } from '../../runtime/index.js';
import { systemClock } from '../../util/clock.js';
import { EXIT_OK, LemError } from '../../util/errors.js';
import { printJson, type CliContext } from '../context.js';

export interface CalibrateCli {
  runtime: RuntimeName;
  gpus?: string;
  out: string;
  burnS: string;
  idleS: string;
  settleMaxS: string;
  json?: boolean;
}

function seconds(name: string, v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new LemError(`--${name} expects seconds (a number ≥ 0), got '${v}'.`);
  return n;
}

export async function calibrateCommand(ctx: CliContext, o: CalibrateCli): Promise<number> {
  const gpus = o.gpus
    ? o.gpus.split(',').map((g) => {
        const n = Number(g.trim());
        if (!Number.isInteger(n) || n < 0) throw new LemError(`--gpus expects comma-separated GPU indices (e.g. 0,1), got '${o.gpus}'.`);
        return n;
      })
    : null;
  const out = resolve(o.out);
  const runtime = await createRuntime(o.runtime, { log: (m) => ctx.err(`runtime: ${m}`) });
  const burnS = seconds('burn-s', o.burnS);
  ctx.err(`calibrating on the ${o.runtime} runtime: idle ${o.idleS}s, burn ${burnS}s, then waiting (≤ ${o.settleMaxS}s) for idle…`);
  const f = await calibrate(
    runtime,
    { runtimeName: o.runtime, gpus, burnS, idleS: seconds('idle-s', o.idleS), settleMaxS: seconds('settle-max-s', o.settleMaxS), out },
    systemClock,
    { campaignId: `calibrate-${process.pid}`, workspaceRoot: ctx.stateDir },
  );
  if (o.json) {
    printJson(ctx, 'calibrate', { file: out, ...f });
    return EXIT_OK;
  }
  const show = (label: string, m: { value: number | null; reason: string | null }, unit: string): void =>
    ctx.out(`${label.padEnd(28)} ${m.value === null ? `not measured: ${m.reason}` : `${m.value} ${unit}`}`);
  show('idle temperature', f.idle_temp_c, '°C');
  show('idle power', f.idle_power_w, 'W');
  show('energy counter update', f.energy_counter_update_s, 's');
  show(`peak after ${f.burn_s} s burn`, f.burn_peak_temp_c, '°C');
  show('time back to idle', f.time_to_idle_s, 's');
  ctx.out('');
  ctx.out(`recommended thermal_gap: ${JSON.stringify(f.recommendation.thermal_gap)}`);
  ctx.out(`recommended measurement.min_window_s: ${f.recommendation.min_window_s}`);
  for (const w of f.recommendation.why) ctx.out(`  - ${w}`);
  ctx.out(`\nwrote ${out}; reference it from a campaign with \`calibration_file: ${o.out}\``);
  return EXIT_OK;
}
