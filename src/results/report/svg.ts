/**
 * Small SVG helpers for the self-contained HTML report: escaping, linear scales, "nice" ticks,
 * number formatting and axes. No external resources; output is plain strings.
 */

/** Escapes text for HTML/SVG text content and double-quoted attribute values. */
export function escapeHtml(value: unknown): string {
  return String(value)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/** Compact number for labels: 4 significant digits, exponent form for very large/small values. */
export function formatNumber(v: number | null | undefined, digits = 4): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '–';
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e6 || a < 1e-3) return v.toExponential(digits - 1).replace(/\.?0+e/, 'e');
  return String(Number(v.toPrecision(digits)));
}

/** Coordinates rounded to 0.01 px keep the SVG small. */
export function px(v: number): string {
  return String(Math.round(v * 100) / 100);
}

export interface Scale {
  (v: number): number;
  domain: [number, number];
  range: [number, number];
}

export function linearScale(domain: [number, number], range: [number, number]): Scale {
  const [d0, d1] = domain;
  const [r0, r1] = range;
  const span = d1 - d0 || 1;
  const f = ((v: number) => r0 + ((v - d0) / span) * (r1 - r0)) as Scale;
  f.domain = domain;
  f.range = range;
  return f;
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

/** About `count` round tick values inside [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / Math.max(1, count);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const norm = raw / mag;
  const step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
  const start = Math.ceil(lo / step) * step;
  const ticks: number[] = [];
  for (let v = start; v <= hi + step * 1e-9; v += step) ticks.push(Math.abs(v) < step * 1e-9 ? 0 : Number(v.toPrecision(12)));
  return ticks;
}

export interface PlotFrame {
  width: number;
  height: number;
  margin: { top: number; right: number; bottom: number; left: number };
}

export const DEFAULT_FRAME: PlotFrame = { width: 760, height: 400, margin: { top: 20, right: 24, bottom: 52, left: 78 } };

/** Axes with grid lines, ticks and labels. */
export function axes(frame: PlotFrame, x: Scale, y: Scale, xLabel: string, yLabel: string, xTicks?: number[]): string {
  const { width, height, margin } = frame;
  const x0 = margin.left;
  const x1 = width - margin.right;
  const y0 = height - margin.bottom;
  const y1 = margin.top;
  const parts: string[] = [];
  parts.push(`<g class="axes">`);
  for (const t of niceTicks(y.domain[0], y.domain[1])) {
    const yy = px(y(t));
    parts.push(`<line class="grid" x1="${x0}" x2="${x1}" y1="${yy}" y2="${yy}"/>`);
    parts.push(`<text class="tick" x="${x0 - 6}" y="${yy}" text-anchor="end" dominant-baseline="middle">${escapeHtml(formatNumber(t))}</text>`);
  }
  for (const t of xTicks ?? niceTicks(x.domain[0], x.domain[1], 6)) {
    const xx = px(x(t));
    parts.push(`<line class="grid" x1="${xx}" x2="${xx}" y1="${y1}" y2="${y0}"/>`);
    parts.push(`<text class="tick" x="${xx}" y="${y0 + 16}" text-anchor="middle">${escapeHtml(formatNumber(t))}</text>`);
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
