/**
 * Serving sweeps: a metric against the requested request rate (traffic.rate_rps varied), one line per
 * series (experiments that differ only in the rate), mean per experiment with its 95 % t-interval.
 * Marks: circle.rate-point (one per experiment with a value), polyline.rate-line (per series with 2+ rates),
 * line.ci-whisker.
 */
import type { ExperimentAggregate } from '../aggregate.js';
import { axes, colour, DEFAULT_FRAME, escapeHtml, formatNumber, linearScale, paddedExtent, px, type PlotFrame } from './svg.js';

/** The metrics drawn against the request rate, in order, when present. */
export const RATE_PLOT_METRICS = ['j_per_output_token', 'j_per_request', 'ttft_p50_s', 'ttft_p99_s', 'itl_p50_s', 'e2e_p99_s', 'achieved_rate_rps'] as const;

/** Experiments with a requested rate (open-loop serving runs), with that rate. */
export function rateExperiments(experiments: readonly ExperimentAggregate[]): { e: ExperimentAggregate; rate: number }[] {
  return experiments.flatMap((e) => {
    const rate = e.metrics['requested_rate_rps']?.description?.mean;
    return rate !== undefined && rate !== null && Number.isFinite(rate) ? [{ e, rate }] : [];
  });
}

/** True when at least two distinct requested rates were measured: a rate sweep worth drawing. */
export function isRateSweep(experiments: readonly ExperimentAggregate[]): boolean {
  return new Set(rateExperiments(experiments).map((r) => r.rate)).size >= 2;
}

function seriesKey(e: ExperimentAggregate): string {
  return (e.name ?? e.experimentId).replace(/\s*traffic\.rate_rps=\S+/, '').trim() || 'serving';
}

export function ratePlot(experiments: readonly ExperimentAggregate[], metric: string, frame: PlotFrame = DEFAULT_FRAME): { svg: string; points: number } {
  const rows = rateExperiments(experiments).flatMap(({ e, rate }) => {
    const d = e.metrics[metric]?.description;
    return d ? [{ e, rate, mean: d.mean, ci: d.ci95 ?? null, series: seriesKey(e) }] : [];
  });
  const { width, height, margin } = frame;
  const sx = linearScale(paddedExtent(rows.map((r) => r.rate)), [margin.left, width - margin.right]);
  const sy = linearScale(paddedExtent(rows.flatMap((r) => (r.ci ? [r.ci.low, r.ci.high, r.mean] : [r.mean]))), [height - margin.bottom, margin.top]);
  const parts: string[] = [];
  parts.push(`<svg class="plot rate-plot" data-metric="${escapeHtml(metric)}" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${escapeHtml(`${metric} vs requested rate`)}">`);
  parts.push(axes(frame, sx, sy, 'requested rate (requests/s)', metric));
  const series = [...new Set(rows.map((r) => r.series))];
  series.forEach((name, i) => {
    const c = colour(i);
    const mine = rows.filter((r) => r.series === name).sort((a, b) => a.rate - b.rate);
    if (mine.length > 1) parts.push(`<polyline class="rate-line" fill="none" stroke="${c}" points="${mine.map((r) => `${px(sx(r.rate))},${px(sy(r.mean))}`).join(' ')}"><title>${escapeHtml(name)}</title></polyline>`);
    for (const r of mine) {
      if (r.ci) parts.push(`<line class="ci-whisker" stroke="${c}" x1="${px(sx(r.rate))}" x2="${px(sx(r.rate))}" y1="${px(sy(r.ci.low))}" y2="${px(sy(r.ci.high))}"/>`);
      parts.push(
        `<circle class="rate-point" data-experiment="${escapeHtml(r.e.experimentId)}" data-rate="${r.rate}" cx="${px(sx(r.rate))}" cy="${px(sy(r.mean))}" r="5" fill="${c}"><title>${escapeHtml(`${r.e.name ?? r.e.experimentId}: ${formatNumber(r.mean)} at ${formatNumber(r.rate)} req/s`)}</title></circle>`,
      );
    }
  });
  if (rows.length === 0) parts.push(`<text class="empty" x="${width / 2}" y="${height / 2}" text-anchor="middle">no values</text>`);
  parts.push('</svg>');
  return { svg: parts.join(''), points: rows.length };
}
