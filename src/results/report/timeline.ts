/**
 * The power timeline of one run (plot (c) of the report) and what it reads from a result file:
 * power samples, the worker's phases (idle baseline, warm-up, measured window, prefill pass) and
 * the measured window's energy.
 */
import { parseResult } from '../../contract/result-parse.js';
import { estimateTextWidth, overlaps, type Box } from './labels.js';
import { axes, DEFAULT_FRAME, escapeHtml, formatNumber, linearScale, paddedExtent, px, type PlotFrame } from './svg.js';

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

/** A phase of the worker's run, from `timeline.phases` (seconds on the timeline's clock). */
export interface TimelinePhase {
  name: string;
  start_s: number;
  end_s: number;
}

/** How the report names the worker's phases (images/worker: meter.begin(name)). */
export const PHASE_LABELS: Readonly<Record<string, string>> = {
  idle_baseline: 'idle baseline',
  warmup: 'warm-up',
  steady: 'measured window',
  prefill: 'prefill pass',
};
const PHASE_FILL: Readonly<Record<string, string>> = {
  idle_baseline: '#8c8c8c',
  warmup: '#E69F00',
  steady: '#009E73',
  prefill: '#56B4E9',
};

export function phaseLabel(name: string): string {
  return PHASE_LABELS[name] ?? name.replace(/_/g, ' ');
}
export function phaseFill(name: string): string {
  return PHASE_FILL[name] ?? '#CC79A7';
}

export interface TimelineOptions {
  frame?: PlotFrame;
  phases?: readonly TimelinePhase[];
  /** Validation gates of the run; when any, the trace's sample markers are drawn hollow and the plot says so. */
  flags?: readonly string[];
}

/**
 * (c) Power timeline of one run: one polyline vertex per sample (finite samples, sorted by time),
 * the worker's phases as shaded bands (class phase-band, data-phase = the worker's name), and for a
 * flagged run hollow sample markers (circle.sample-point.flagged).
 */
export function powerTimelinePlot(samples: readonly PowerSample[], opts: TimelineOptions | PlotFrame = {}): TimelineResult {
  const o: TimelineOptions = 'width' in opts ? { frame: opts } : opts;
  const frame = o.frame ?? DEFAULT_FRAME;
  const phases = (o.phases ?? []).filter((p) => Number.isFinite(p.start_s) && Number.isFinite(p.end_s) && p.end_s > p.start_s);
  const flagged = (o.flags ?? []).length > 0;
  const s = samples.filter((p) => Number.isFinite(p.t_s) && Number.isFinite(p.power_w)).sort((a, b) => a.t_s - b.t_s);
  const { width, height, margin } = frame;
  const sx = linearScale(paddedExtent([...s.map((p) => p.t_s), ...phases.flatMap((p) => [p.start_s, p.end_s])], 0.02), [margin.left, width - margin.right]);
  const sy = linearScale(paddedExtent([0, ...s.map((p) => p.power_w)], 0.12), [height - margin.bottom, margin.top]);
  const energyJ = integrateEnergyJ(s);
  const duration = s.length > 1 ? (s[s.length - 1] as PowerSample).t_s - (s[0] as PowerSample).t_s : 0;
  const meanPowerW = duration > 0 ? energyJ / duration : s.length === 1 ? (s[0] as PowerSample).power_w : null;
  const parts: string[] = [];
  parts.push(`<svg class="plot power-timeline" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="power timeline">`);
  parts.push(axes(frame, sx, sy, 'time (s)', 'power (W)'));
  const top = margin.top;
  const bottom = height - margin.bottom;
  const lo = margin.left;
  const hi = width - margin.right;
  for (const p of phases) {
    const x0 = Math.max(lo, sx(p.start_s));
    const x1 = Math.min(hi, sx(p.end_s));
    parts.push(
      `<rect class="phase-band" data-phase="${escapeHtml(p.name)}" x="${px(x0)}" y="${top}" width="${px(Math.max(1, x1 - x0))}" height="${bottom - top}" fill="${phaseFill(p.name)}" fill-opacity="0.16"><title>${escapeHtml(`${phaseLabel(p.name)}: ${formatNumber(p.start_s)}–${formatNumber(p.end_s)} s`)}</title></rect>`,
    );
  }
  // Phase names inside their band, at the top, where they fit (the legend under the plot names them all).
  const taken: Box[] = [];
  for (const p of phases) {
    const x0 = Math.max(lo, sx(p.start_s));
    const x1 = Math.min(hi, sx(p.end_s));
    const text = phaseLabel(p.name);
    const w = estimateTextWidth(text, 11);
    for (const row of [0, 1, 2]) {
      const box = { x: x0 + 3, y: top + 3 + row * 16, w, h: 15 };
      if (box.x + w > x1 - 2) break;
      if (taken.some((b) => overlaps(b, box, 2))) continue;
      taken.push(box);
      parts.push(`<text class="phase-label" x="${px(box.x + 1)}" y="${px(box.y + box.h / 2)}" dominant-baseline="central">${escapeHtml(text)}</text>`);
      break;
    }
  }
  if (s.length > 0) parts.push(`<polyline class="power-line" points="${s.map((p) => `${px(sx(p.t_s))},${px(sy(p.power_w))}`).join(' ')}"/>`);
  if (flagged) {
    const step = Math.max(1, Math.ceil(s.length / 120));
    for (const [i, p] of s.entries()) {
      if (i % step !== 0) continue;
      parts.push(`<circle class="sample-point flagged" cx="${px(sx(p.t_s))}" cy="${px(sy(p.power_w))}" r="2.5" fill="#fff" stroke="#D55E00"/>`);
    }
  }
  if (meanPowerW !== null) {
    const yy = px(sy(meanPowerW));
    parts.push(`<line class="mean-power" x1="${lo}" x2="${hi}" y1="${yy}" y2="${yy}"><title>${escapeHtml(`mean ${formatNumber(meanPowerW)} W`)}</title></line>`);
  }
  parts.push(`</svg>`);
  return { svg: parts.join(''), points: s.length, energyJ, meanPowerW };
}

/** The worker's phases of a run from its result file (schema v3 `timeline.phases`); [] when none. */
export function phasesFromResult(result: unknown): TimelinePhase[] {
  const parsed = parseResult(result);
  if (!parsed.ok || parsed.result.timeline === null) return [];
  return parsed.result.timeline.phases.map((p) => ({ name: p.name, start_s: p.start_s, end_s: p.end_s }));
}

/** The measured window's energy as the result reports it (not the trace's integral). */
export interface WindowEnergy {
  /** GPU energy of the window (J), null when not measured. */
  gpu_j: number | null;
  /** Total over the measured domains (J), null when none. */
  total_j: number | null;
  window_s: number | null;
  /** How the window energy was taken (e.g. NVML counter delta). */
  method: string | null;
  /** Why the GPU energy is null. */
  reason: string | null;
}

export function windowEnergyFromResult(result: unknown): WindowEnergy | null {
  const parsed = parseResult(result);
  if (!parsed.ok) return null;
  const e = parsed.result.energy;
  return { gpu_j: e.gpu.joules, total_j: e.raw.total_j, window_s: e.window_s, method: e.method, reason: e.gpu.reason };
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
