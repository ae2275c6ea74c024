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
import { parseResult } from '../schema.js';
import type { Interval } from '../stats.js';
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

function ciOf(e: ExperimentAggregate, metric: string): Interval | null {
  const d = e.metrics[metric]?.description;
  return d ? (d.ci95_bootstrap ?? d.ci95_t) : null;
}

function labelOf(e: ExperimentAggregate): string {
  return e.name ?? e.experimentId;
}

export interface ScatterResult {
  svg: string;
  plotted: string[];
  pareto: string[];
  skipped: string[];
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
    if (x === undefined || y === undefined) skipped.push(e.experimentId);
    else pts.push({ e, i, x, y, cx: ciOf(e, throughputMetric), cy: ciOf(e, energyMetric) });
  });
  const front = new Set(paretoFront(pts.map((p) => ({ id: p.e.experimentId, x: p.x, y: p.y }))));
  const xs = pts.flatMap((p) => [p.x, p.cx?.low ?? p.x, p.cx?.high ?? p.x]);
  const ys = pts.flatMap((p) => [p.y, p.cy?.low ?? p.y, p.cy?.high ?? p.y]);
  const { width, height, margin } = frame;
  const sx = linearScale(paddedExtent(xs), [margin.left, width - margin.right]);
  const sy = linearScale(paddedExtent(ys), [height - margin.bottom, margin.top]);
  const parts: string[] = [];
  parts.push(
    `<svg class="plot energy-throughput" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${escapeHtml(`${energyMetric} vs ${throughputMetric}`)}">`,
  );
  parts.push(axes(frame, sx, sy, `${throughputMetric} (mean, higher is better)`, `${energyMetric} (mean, lower is better)`));
  const frontPts = pts.filter((p) => front.has(p.e.experimentId)).sort((a, b) => a.x - b.x);
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
  for (const p of pts) {
    const onFront = front.has(p.e.experimentId);
    const c = colour(p.i);
    const title = `${labelOf(p.e)}: ${energyMetric} ${formatNumber(p.y)}, ${throughputMetric} ${formatNumber(p.x)}${onFront ? ' (Pareto-optimal)' : ''}`;
    parts.push(
      `<circle class="point${onFront ? ' pareto' : ''}" data-experiment="${escapeHtml(p.e.experimentId)}" cx="${px(sx(p.x))}" cy="${px(sy(p.y))}" r="${onFront ? 7 : 5}" fill="${c}"><title>${escapeHtml(title)}</title></circle>`,
    );
    const right = sx(p.x) > margin.left + 0.7 * (width - margin.left - margin.right);
    parts.push(
      `<text class="point-label" x="${px(sx(p.x) + (right ? -9 : 9))}" y="${px(sy(p.y) - 8)}"${right ? ' text-anchor="end"' : ''}>${escapeHtml(labelOf(p.e))}</text>`,
    );
  }
  if (pts.length === 0) parts.push(`<text class="empty" x="${width / 2}" y="${height / 2}" text-anchor="middle">no experiment has both metrics</text>`);
  parts.push(`</svg>`);
  return { svg: parts.join(''), plotted: pts.map((p) => p.e.experimentId), pareto: [...front], skipped };
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

export interface PowerSample {
  t_s: number;
  power_w: number;
}

export interface TimelineResult {
  svg: string;
  points: number;
  /** Trapezoidal energy over the samples, J. */
  energyJ: number;
  meanPowerW: number | null;
}

/** Trapezoidal integral of power over time (J). */
export function integrateEnergyJ(samples: readonly PowerSample[]): number {
  let e = 0;
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1] as PowerSample;
    const b = samples[i] as PowerSample;
    e += ((a.power_w + b.power_w) / 2) * (b.t_s - a.t_s);
  }
  return e;
}

/** (c) Power timeline of one run: one polyline vertex per sample (finite samples, sorted by time). */
export function powerTimelinePlot(samples: readonly PowerSample[], frame: PlotFrame = DEFAULT_FRAME): TimelineResult {
  const s = samples.filter((p) => Number.isFinite(p.t_s) && Number.isFinite(p.power_w)).sort((a, b) => a.t_s - b.t_s);
  const { width, height, margin } = frame;
  const sx = linearScale(paddedExtent(s.map((p) => p.t_s), 0.02), [margin.left, width - margin.right]);
  const sy = linearScale(paddedExtent([0, ...s.map((p) => p.power_w)], 0.05), [height - margin.bottom, margin.top]);
  const energyJ = integrateEnergyJ(s);
  const duration = s.length > 1 ? (s[s.length - 1] as PowerSample).t_s - (s[0] as PowerSample).t_s : 0;
  const meanPowerW = duration > 0 ? energyJ / duration : s.length === 1 ? (s[0] as PowerSample).power_w : null;
  const parts: string[] = [];
  parts.push(`<svg class="plot power-timeline" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="power timeline">`);
  parts.push(axes(frame, sx, sy, 'time (s)', 'power (W)'));
  if (s.length > 0) parts.push(`<polyline class="power-line" points="${s.map((p) => `${px(sx(p.t_s))},${px(sy(p.power_w))}`).join(' ')}"/>`);
  if (meanPowerW !== null) {
    const yy = px(sy(meanPowerW));
    parts.push(`<line class="mean-power" x1="${margin.left}" x2="${width - margin.right}" y1="${yy}" y2="${yy}"><title>${escapeHtml(`mean ${formatNumber(meanPowerW)} W`)}</title></line>`);
  }
  parts.push(`</svg>`);
  return { svg: parts.join(''), points: s.length, energyJ, meanPowerW };
}

/**
 * Power samples of a run from its result file (schema v3 `timeline`; v1 files have none → null).
 * Uses instant power where sampled, else the 1-s average. `gpu`: a GPU's position in
 * timeline.gpus, or 'sum' (default) to add all GPUs sample by sample when their time bases agree
 * (else the first GPU). Samples with no power value are skipped.
 */
export function powerSamplesFromResult(result: unknown, gpu: number | 'sum' = 'sum'): PowerSample[] | null {
  const parsed = parseResult(result);
  if (!parsed.ok || parsed.result.timeline === null) return null;
  const gpus = parsed.result.timeline.gpus;
  if (gpus.length === 0) return null;
  const samplesOf = (g: (typeof gpus)[number]): (PowerSample | null)[] =>
    g.t_s.map((t, i) => {
      const p = g.power_instant_w[i] ?? g.power_avg_w[i] ?? null;
      return p === null || p === undefined ? null : { t_s: t, power_w: p };
    });
  if (gpu !== 'sum') {
    const g = gpus[gpu];
    return g ? samplesOf(g).filter((p): p is PowerSample => p !== null) : null;
  }
  const first = gpus[0] as (typeof gpus)[number];
  const aligned = gpus.every((g) => g.t_s.length === first.t_s.length && g.t_s.every((t, i) => Math.abs(t - (first.t_s[i] as number)) < 1e-6));
  if (!aligned) return samplesOf(first).filter((p): p is PowerSample => p !== null);
  const per = gpus.map(samplesOf);
  const out: PowerSample[] = [];
  first.t_s.forEach((t, i) => {
    let sum = 0;
    for (const s of per) {
      const v = s[i];
      if (!v) return;
      sum += v.power_w;
    }
    out.push({ t_s: t, power_w: sum });
  });
  return out;
}
