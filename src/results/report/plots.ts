/**
 * Inline SVG plots for the report. Every mark carries a class (and data-* attributes) so tests and
 * readers can find them:
 *   energy vs throughput: circle.point (one per experiment), circle.point.pareto (on the front),
 *     line.ci-whisker.ci-x / .ci-y (one per available CI), polyline.pareto-front
 *   per-cycle strip plot: circle.strip-point (one per used run value; flagged runs hollow),
 *     polyline.strip-line (per experiment, through its per-cycle means)
 *   power timeline: polyline.power-line (one vertex per sample), line.mean-power
 */
import type { ExperimentAggregate } from '../aggregate.js';
import type { Interval } from '../stats.js';
import { placeLabels } from './labels.js';
import { axes, colour, DEFAULT_FRAME, escapeHtml, formatNumber, linearScale, paddedExtent, px, type PlotFrame } from './svg.js';

export interface ParetoCandidate {
  id: string;
  /** Higher is better (throughput). */
  x: number;
  /** Lower is better (energy). */
  y: number;
}

/** Ids of the non-dominated candidates (max x, min y), in input order. */
export function paretoFront(points: readonly ParetoCandidate[]): string[] {
  return points
    .filter((p) => !points.some((q) => q !== p && q.x >= p.x && q.y <= p.y && (q.x > p.x || q.y < p.y)))
    .map((p) => p.id);
}

/** The headline interval (interval policy: Student t) of an experiment's metric. */
function ciOf(e: ExperimentAggregate, metric: string): Interval | null {
  return e.metrics[metric]?.description?.ci95 ?? null;
}

/** Per-run (x, y) pairs of an experiment: runs that have both metrics. */
function runPairs(e: ExperimentAggregate, xMetric: string, yMetric: string): { runId: string; x: number; y: number; flagged: boolean }[] {
  const ys = new Map((e.metrics[yMetric]?.points ?? []).map((p) => [p.runId, p]));
  return (e.metrics[xMetric]?.points ?? []).flatMap((p) => {
    const q = ys.get(p.runId);
    return q ? [{ runId: p.runId, x: p.value, y: q.value, flagged: p.flagged || q.flagged }] : [];
  });
}

function labelOf(e: ExperimentAggregate): string {
  return e.name ?? e.experimentId;
}

/** An aggregate's key in a plot: its experiment, and its GPU model when the experiment's runs were split by model. */
function keyOf(e: ExperimentAggregate): string {
  return e.gpuModel ? `${e.experimentId}@${e.gpuModel}` : e.experimentId;
}

export interface ScatterResult {
  svg: string;
  plotted: string[];
  pareto: string[];
  skipped: string[];
  /** Experiments whose name label fitted nowhere without overlap (their point keeps a tooltip). */
  unlabelled: string[];
}

/** (a) Energy metric (y, lower is better) vs throughput (x, higher is better), mean ± 95 % CI, Pareto front marked. */
export function energyThroughputPlot(
  experiments: readonly ExperimentAggregate[],
  energyMetric: string,
  throughputMetric: string,
  frame: PlotFrame = DEFAULT_FRAME,
): ScatterResult {
  const pts: { e: ExperimentAggregate; i: number; x: number; y: number; cx: Interval | null; cy: Interval | null }[] = [];
  const skipped: string[] = [];
  experiments.forEach((e, i) => {
    const x = e.metrics[throughputMetric]?.description?.mean;
    const y = e.metrics[energyMetric]?.description?.mean;
    if (x === undefined || y === undefined) skipped.push(keyOf(e));
    else pts.push({ e, i, x, y, cx: ciOf(e, throughputMetric), cy: ciOf(e, energyMetric) });
  });
  const front = new Set(paretoFront(pts.map((p) => ({ id: keyOf(p.e), x: p.x, y: p.y }))));
  const runsOf = new Map(pts.map((p) => [keyOf(p.e), runPairs(p.e, throughputMetric, energyMetric)]));
  const allRuns = [...runsOf.values()].flat();
  const xs = [...pts.flatMap((p) => [p.x, p.cx?.low ?? p.x, p.cx?.high ?? p.x]), ...allRuns.map((r) => r.x)];
  const ys = [...pts.flatMap((p) => [p.y, p.cy?.low ?? p.y, p.cy?.high ?? p.y]), ...allRuns.map((r) => r.y)];
  const { width, height, margin } = frame;
  const sx = linearScale(paddedExtent(xs, 0.1), [margin.left, width - margin.right]);
  const sy = linearScale(paddedExtent(ys, 0.1), [height - margin.bottom, margin.top]);
  const parts: string[] = [];
  parts.push(
    `<svg class="plot energy-throughput" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${escapeHtml(`${energyMetric} vs ${throughputMetric}`)}">`,
  );
  parts.push(axes(frame, sx, sy, `${throughputMetric} (mean, higher is better)`, `${energyMetric} (mean, lower is better)`));
  const frontPts = pts.filter((p) => front.has(keyOf(p.e))).sort((a, b) => a.x - b.x);
  if (frontPts.length > 1) {
    // Step line: the best energy attainable at a given throughput or more. From each front point the
    // line rises to the next point's energy (more throughput costs energy), then runs across to it.
    const vs: string[] = [];
    frontPts.forEach((p, k) => {
      if (k > 0) vs.push(`${px(sx((frontPts[k - 1] as (typeof frontPts)[number]).x))},${px(sy(p.y))}`);
      vs.push(`${px(sx(p.x))},${px(sy(p.y))}`);
    });
    parts.push(`<polyline class="pareto-front" points="${vs.join(' ')}"/>`);
  }
  for (const p of pts) {
    const c = colour(p.i);
    const cx = px(sx(p.x));
    const cy = px(sy(p.y));
    if (p.cy) parts.push(`<line class="ci-whisker ci-y" stroke="${c}" x1="${cx}" x2="${cx}" y1="${px(sy(p.cy.low))}" y2="${px(sy(p.cy.high))}"/>`);
    if (p.cx) parts.push(`<line class="ci-whisker ci-x" stroke="${c}" x1="${px(sx(p.cx.low))}" x2="${px(sx(p.cx.high))}" y1="${cy}" y2="${cy}"/>`);
  }
  // Every run as a small dot behind the means; flagged runs hollow.
  for (const p of pts) {
    const c = colour(p.i);
    for (const r of runsOf.get(keyOf(p.e)) ?? []) {
      parts.push(
        `<circle class="run-point${r.flagged ? ' flagged' : ''}" data-experiment="${escapeHtml(p.e.experimentId)}" cx="${px(sx(r.x))}" cy="${px(sy(r.y))}" r="2.5" fill="${r.flagged ? '#fff' : c}" stroke="${c}"><title>${escapeHtml(`${labelOf(p.e)}, run ${r.runId}${r.flagged ? ' (flagged)' : ''}`)}</title></circle>`,
      );
    }
  }
  for (const p of pts) {
    const onFront = front.has(keyOf(p.e));
    const c = colour(p.i);
    const flaggedRuns = (runsOf.get(keyOf(p.e)) ?? []).filter((r) => r.flagged).length;
    const title = `${labelOf(p.e)}: ${energyMetric} ${formatNumber(p.y)}, ${throughputMetric} ${formatNumber(p.x)}${onFront ? ' (Pareto-optimal)' : ''}${flaggedRuns ? `, ${flaggedRuns} flagged run(s) included` : ''}`;
    parts.push(
      `<circle class="point${onFront ? ' pareto' : ''}" data-experiment="${escapeHtml(p.e.experimentId)}" cx="${px(sx(p.x))}" cy="${px(sy(p.y))}" r="${onFront ? 7 : 5}" fill="${c}"><title>${escapeHtml(title)}</title></circle>`,
    );
  }
  // Labels: Pareto points first, then by throughput; placed greedily without overlap or clipping.
  const order = pts.slice().sort((a, b) => Number(front.has(keyOf(b.e))) - Number(front.has(keyOf(a.e))) || b.x - a.x);
  const placed = placeLabels(
    order.map((p) => ({ id: keyOf(p.e), text: labelOf(p.e), x: sx(p.x), y: sy(p.y), r: front.has(keyOf(p.e)) ? 7 : 5 })),
    { x: margin.left + 2, y: margin.top + 2, w: width - margin.left - margin.right - 4, h: height - margin.top - margin.bottom - 4 },
    [],
  );
  for (const l of placed) {
    if (l.leader) parts.push(`<line class="label-leader" x1="${px(l.leader.x1)}" y1="${px(l.leader.y1)}" x2="${px(l.leader.x2)}" y2="${px(l.leader.y2)}"/>`);
    parts.push(
      `<text class="point-label" data-experiment="${escapeHtml(l.id)}" x="${px(l.x)}" y="${px(l.y)}" dominant-baseline="central"${l.anchor === 'start' ? '' : ` text-anchor="${l.anchor}"`}>${escapeHtml(l.text)}</text>`,
    );
  }
  const labelled = new Set(placed.map((l) => l.id));
  if (pts.length === 0) parts.push(`<text class="empty" x="${width / 2}" y="${height / 2}" text-anchor="middle">no experiment has both metrics</text>`);
  parts.push(`</svg>`);
  return {
    svg: parts.join(''),
    plotted: pts.map((p) => keyOf(p.e)),
    pareto: [...front],
    skipped,
    unlabelled: pts.map((p) => keyOf(p.e)).filter((id) => !labelled.has(id)),
  };
}

export interface StripResult {
  svg: string;
  points: number;
}

/** (b) Per-cycle strip plot of one metric, one colour per experiment, to show drift and thermal effects. */
export function cycleStripPlot(experiments: readonly ExperimentAggregate[], metric: string, frame: PlotFrame = DEFAULT_FRAME): StripResult {
  const series = experiments.map((e, i) => ({ e, i, points: e.metrics[metric]?.points ?? [] }));
  const all = series.flatMap((s) => s.points);
  const cycles = [...new Set(all.map((p) => p.cycle))].sort((a, b) => a - b);
  const { width, height, margin } = frame;
  const cx = linearScale([(cycles[0] ?? 1) - 0.6, (cycles[cycles.length - 1] ?? 1) + 0.6], [margin.left, width - margin.right]);
  const sy = linearScale(paddedExtent(all.map((p) => p.value)), [height - margin.bottom, margin.top]);
  const k = Math.max(1, series.length);
  const offset = (i: number): number => (k === 1 ? 0 : ((i / (k - 1)) * 2 - 1) * 0.25); // deterministic dodge, ±0.25 cycle
  const parts: string[] = [];
  parts.push(`<svg class="plot cycle-strip" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${escapeHtml(`${metric} per cycle`)}">`);
  const step = Math.max(1, Math.ceil(cycles.length / 12));
  parts.push(axes(frame, cx, sy, 'cycle', metric, cycles.filter((_, j) => j % step === 0)));
  for (const s of series) {
    const c = colour(s.i);
    const byCycle = new Map<number, number[]>();
    for (const p of s.points) byCycle.set(p.cycle, [...(byCycle.get(p.cycle) ?? []), p.value]);
    const means = [...byCycle.entries()].sort((a, b) => a[0] - b[0]).map(([cy, vs]) => [cy, vs.reduce((a, b) => a + b, 0) / vs.length] as const);
    if (means.length > 1) {
      parts.push(
        `<polyline class="strip-line" data-experiment="${escapeHtml(s.e.experimentId)}" stroke="${c}" points="${means.map(([cy, m]) => `${px(cx(cy + offset(s.i)))},${px(sy(m))}`).join(' ')}"/>`,
      );
    }
    for (const p of s.points) {
      const fill = p.flagged ? 'none' : c;
      parts.push(
        `<circle class="strip-point${p.flagged ? ' flagged' : ''}" data-experiment="${escapeHtml(s.e.experimentId)}" data-cycle="${p.cycle}" cx="${px(cx(p.cycle + offset(s.i)))}" cy="${px(sy(p.value))}" r="4" fill="${fill}" stroke="${c}"><title>${escapeHtml(`${s.e.name ?? s.e.experimentId}, cycle ${p.cycle}, run ${p.runId}: ${formatNumber(p.value)}${p.flagged ? ' (flagged)' : ''}`)}</title></circle>`,
      );
    }
  }
  if (all.length === 0) parts.push(`<text class="empty" x="${width / 2}" y="${height / 2}" text-anchor="middle">no values</text>`);
  parts.push(`</svg>`);
  return { svg: parts.join(''), points: all.length };
}

export { integrateEnergyJ, phasesFromResult, powerSamplesFromResult, powerTimelinePlot, windowEnergyFromResult, type PowerSample, type TimelinePhase, type TimelineResult, type WindowEnergy } from './timeline.js';
