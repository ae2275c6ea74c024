/** `lem validate A B`: B against A within tolerances; exit 0 within, 1 outside, 3 inconclusive. */
import { compareRunSets } from '../../results/compare.js';
import { summariseValidation, validationExitCode } from '../../results/validate.js';
import { printJson, type CliContext } from '../context.js';
import { num } from '../format.js';
import { table } from '../format.js';
import { aggOptions, side, type StatOptions } from './results.js';
import { tolerancesFromCli, type ToleranceCli } from './tolerances.js';

function pctSigned(x: number): string {
  const v = x * 100;
  return `${v >= 0 ? '+' : ''}${v.toFixed(1)} %`;
}

export async function validate(ctx: CliContext, a: string, b: string, o: StatOptions & ToleranceCli & { json?: boolean }): Promise<number> {
  const tolerances = tolerancesFromCli(o);
  const [sa, sb] = [await side(ctx, a), await side(ctx, b)];
  const cmp = compareRunSets(sa.runs, sb.runs, { ...aggOptions(0, o), tolerances, labels: { a: sa.label, b: sb.label } });
  const summary = summariseValidation(cmp);
  const code = validationExitCode(summary, 'inconclusive');
  if (o.json) {
    printJson(ctx, 'validate', {
      a: { label: sa.label, runs_used: cmp.counts.a.used },
      b: { label: sb.label, runs_used: cmp.counts.b.used },
      tolerances: cmp.options.tolerances,
      interval: { method: cmp.options.method, resamples: cmp.options.resamples, confidence: 0.95 },
      outcome: summary.outcome,
      exit_code: code,
      counts: summary.counts,
      metrics: summary.metrics,
      not_compared: summary.not_compared,
    });
    return code;
  }
  ctx.out(`A = ${sa.label} (${cmp.counts.a.used} runs)\nB = ${sb.label} (${cmp.counts.b.used} runs)`);
  ctx.out(
    table(
      ['metric', 'n A', 'n B', 'mean A', 'mean B', 'B/A', '95% CI of B/A', 'tolerance', 'verdict'],
      summary.metrics.map((m) => [
        m.metric,
        String(m.n_a),
        String(m.n_b),
        num(m.mean_a),
        num(m.mean_b),
        m.ratio === null ? '—' : m.ratio.toFixed(3),
        m.ratio_ci ? `${pctSigned(m.ratio_ci.low - 1)} … ${pctSigned(m.ratio_ci.high - 1)}` : '(no interval: n < 2 or no spread)',
        `±${(m.tolerance * 100).toFixed(1)} %`,
        m.status,
      ]),
      [1, 2, 3, 4, 5],
    ),
  );
  if (summary.not_compared.length > 0) ctx.out(`not compared (measured on one side only): ${summary.not_compared.join(', ')}`);
  const c = summary.counts;
  ctx.out(
    `outcome: ${summary.outcome.toUpperCase()} — ${c.within} within, ${c.outside} outside, ${c.inconclusive} inconclusive${summary.metrics.length === 0 ? ' (no metric with a tolerance was measured on both sides)' : ''} (exit ${code})`,
  );
  return code;
}
