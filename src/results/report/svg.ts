/**
 * Small SVG helpers for the self-contained HTML report: escaping, scales and ticks (d3-scale),
 * number formatting (d3-format) and axes. No external resources; output is plain strings.
 */
import { format as d3format } from 'd3-format';
import { scaleLinear, type ScaleLinear } from 'd3-scale';

/** Escapes text for HTML/SVG text content and double-quoted attribute values. */
export function escapeHtml(value: unknown): string {
  return String(value)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

const SIG4 = d3format('.4~g');
const EXP4 = d3format('.4~e');

/** Compact number for labels: 4 significant digits, exponent form for very large/small values (d3-format). */
export function formatNumber(v: number | null | undefined, digits = 4): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '–';
  if (v === 0) return '0';
  const a = Math.abs(v);
  const f = digits === 4 ? (a >= 1e6 || a < 1e-3 ? EXP4 : SIG4) : d3format(a >= 1e6 || a < 1e-3 ? `.${digits}~e` : `.${digits}~g`);
  return f(v).replace('−', '-').replace('e+', 'e');
}

/** Coordinates rounded to 0.01 px keep the SVG small. */
export function px(v: number): string {
  return String(Math.round(v * 100) / 100);
}

/** A linear scale (d3-scale). */
export type Scale = ScaleLinear<number, number>;

export function linearScale(domain: [number, number], range: [number, number]): Scale {
  const [d0, d1] = domain;
  return scaleLinear().domain(d0 === d1 ? [d0 - 1, d1 + 1] : [d0, d1]).range(range);
}

/** Extent of finite values padded by `pad` of the span (or ±1 % / ±1 when the span is 0). */
export function paddedExtent(values: readonly number[], pad = 0.06): [number, number] {
  const xs = values.filter((v) => Number.isFinite(v));
  if (xs.length === 0) return [0, 1];
  let lo = Math.min(...xs);
  let hi = Math.max(...xs);
  if (lo === hi) {
    const d = lo === 0 ? 1 : Math.abs(lo) * 0.01;
    return [lo - d, hi + d];
  }
  const d = (hi - lo) * pad;
  lo -= d;
  hi += d;
  return [lo, hi];
}

/** About `count` round tick values inside [lo, hi] (d3-scale's ticks: 1, 2, 5 × 10^k steps). */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  return scaleLinear().domain([lo, hi]).ticks(count);
}

/**
 * Tick labels for a scale (d3-format): SI prefixes for large or tiny magnitudes (1.5G, 200µ),
 * otherwise fixed notation with just the precision the tick step needs.
 */
export function tickFormatter(scale: Scale, count: number): (v: number) => string {
  const [a, b] = scale.domain() as [number, number];
  const m = Math.max(Math.abs(a), Math.abs(b));
  const si = m >= 1e5 || (m > 0 && m < 1e-3);
  const f = scale.tickFormat(count, si ? '~s' : undefined);
  return (v) => f(v).replace('−', '-');
}

export interface PlotFrame {
  width: number;
  height: number;
  margin: { top: number; right: number; bottom: number; left: number };
}

export const DEFAULT_FRAME: PlotFrame = { width: 960, height: 420, margin: { top: 20, right: 24, bottom: 52, left: 78 } };

/** Axes with grid lines, ticks and labels. */
export function axes(frame: PlotFrame, x: Scale, y: Scale, xLabel: string, yLabel: string, xTicks?: number[]): string {
  const { width, height, margin } = frame;
  const x0 = margin.left;
  const x1 = width - margin.right;
  const y0 = height - margin.bottom;
  const y1 = margin.top;
  const parts: string[] = [];
  parts.push(`<g class="axes">`);
  const [yd0, yd1] = y.domain() as [number, number];
  const [xd0, xd1] = x.domain() as [number, number];
  const yf = tickFormatter(y, 5);
  for (const t of niceTicks(Math.min(yd0, yd1), Math.max(yd0, yd1), 5)) {
    const yy = px(y(t));
    parts.push(`<line class="grid" x1="${x0}" x2="${x1}" y1="${yy}" y2="${yy}"/>`);
    parts.push(`<text class="tick" x="${x0 - 6}" y="${yy}" text-anchor="end" dominant-baseline="middle">${escapeHtml(yf(t))}</text>`);
  }
  const xf = xTicks ? (v: number) => String(v) : tickFormatter(x, 6);
  for (const t of xTicks ?? niceTicks(Math.min(xd0, xd1), Math.max(xd0, xd1), 6)) {
    const xx = px(x(t));
    parts.push(`<line class="grid" x1="${xx}" x2="${xx}" y1="${y1}" y2="${y0}"/>`);
    parts.push(`<text class="tick" x="${xx}" y="${y0 + 16}" text-anchor="middle">${escapeHtml(xf(t))}</text>`);
  }
  parts.push(`<line class="axis" x1="${x0}" x2="${x1}" y1="${y0}" y2="${y0}"/>`);
  parts.push(`<line class="axis" x1="${x0}" x2="${x0}" y1="${y1}" y2="${y0}"/>`);
  parts.push(`<text class="label" x="${px((x0 + x1) / 2)}" y="${height - 12}" text-anchor="middle">${escapeHtml(xLabel)}</text>`);
  parts.push(
    `<text class="label" transform="translate(16 ${px((y0 + y1) / 2)}) rotate(-90)" text-anchor="middle">${escapeHtml(yLabel)}</text>`,
  );
  parts.push(`</g>`);
  return parts.join('');
}

/** Okabe–Ito and Tableau colours: distinguishable, colour-blind friendly first. */
export const PALETTE = ['#0072B2', '#E69F00', '#009E73', '#CC79A7', '#D55E00', '#56B4E9', '#F0E442', '#000000', '#8C564B', '#7F7F7F', '#BCBD22', '#17BECF'];

export function colour(i: number): string {
  return PALETTE[i % PALETTE.length] as string;
}
