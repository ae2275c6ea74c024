/**
 * Greedy label placement for the report's scatter plots: each label tries positions around its
 * point (right, left, above, below, the diagonals), nearest ring first, and takes the first whose
 * box stays inside the plot area and overlaps no placed label and no point marker. Labels that
 * only fit further out get a leader line to their point; a label that fits nowhere is left out
 * (its point keeps its tooltip and the legend names it). Text width is estimated from per-glyph
 * widths on the generous side, so a rendered label is never wider than its reserved box (the
 * Chromium test measures the real boxes).
 */

export interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}

export interface LabelRequest {
  id: string;
  text: string;
  /** The point the label names. */
  x: number;
  y: number;
  /** Radius of the point's marker. */
  r: number;
}

export interface PlacedLabel {
  id: string;
  text: string;
  /** Text position: `x` with `anchor`, `y` the vertical centre (dominant-baseline: central). */
  x: number;
  y: number;
  anchor: 'start' | 'middle' | 'end';
  box: Box;
  /** Set when the label sits away from its point: draw a line from (x1, y1) to (x2, y2). */
  leader: { x1: number; y1: number; x2: number; y2: number } | null;
}

/** Conservative width (px) of `text` at `fontPx` in a sans-serif font. */
export function estimateTextWidth(text: string, fontPx = 11): number {
  let em = 0;
  for (const ch of text) {
    if ('iljtfrI.,:;|!\'` '.includes(ch)) em += 0.36;
    else if ('mwMW@%'.includes(ch)) em += 0.95;
    else if (ch >= 'A' && ch <= 'Z') em += 0.74;
    else if (ch >= '0' && ch <= '9') em += 0.64;
    else if (ch.charCodeAt(0) > 0x2000) em += 1.0;
    else em += 0.62;
  }
  return Math.ceil(em * fontPx * 1.06) + 2;
}

export function overlaps(a: Box, b: Box, pad = 0): boolean {
  return a.x < b.x + b.w + pad && b.x < a.x + a.w + pad && a.y < b.y + b.h + pad && b.y < a.y + a.h + pad;
}

function inside(a: Box, bounds: Box): boolean {
  return a.x >= bounds.x && a.y >= bounds.y && a.x + a.w <= bounds.x + bounds.w && a.y + a.h <= bounds.y + bounds.h;
}

const DIRECTIONS: readonly (readonly [number, number])[] = [
  [1, 0],
  [-1, 0],
  [0, -1],
  [0, 1],
  [1, -1],
  [-1, -1],
  [1, 1],
  [-1, 1],
];

/** Places labels in the order given (put the most important first). */
export function placeLabels(requests: readonly LabelRequest[], bounds: Box, obstacles: readonly Box[], fontPx = 11): PlacedLabel[] {
  const h = Math.ceil(fontPx * 1.3);
  const placed: PlacedLabel[] = [];
  const points: Box[] = requests.map((q) => ({ x: q.x - q.r - 1, y: q.y - q.r - 1, w: 2 * q.r + 2, h: 2 * q.r + 2 }));
  const blockers = [...obstacles, ...points];
  for (const q of requests) {
    const w = estimateTextWidth(q.text, fontPx);
    let found: PlacedLabel | null = null;
    for (const [ring, gap] of [3, 14, 30, 50, 75].entries()) {
      const d = q.r + gap;
      for (const [dx, dy] of DIRECTIONS) {
        const diag = dx !== 0 && dy !== 0 ? Math.SQRT1_2 : 1;
        const cx = q.x + dx * d * diag;
        const cy = q.y + dy * d * diag;
        const bx = dx > 0 ? cx : dx < 0 ? cx - w : cx - w / 2;
        const by = dy > 0 ? cy : dy < 0 ? cy - h : cy - h / 2;
        const box = { x: bx, y: by, w, h };
        if (!inside(box, bounds)) continue;
        if (placed.some((p) => overlaps(p.box, box, 2)) || blockers.some((b) => overlaps(b, box, 1))) continue;
        const anchor = dx > 0 ? 'start' : dx < 0 ? 'end' : 'middle';
        const tx = anchor === 'start' ? bx + 1 : anchor === 'end' ? bx + w - 1 : bx + w / 2;
        const leader =
          ring === 0
            ? null
            : { x1: q.x + dx * (q.r + 1) * diag, y1: q.y + dy * (q.r + 1) * diag, x2: dx > 0 ? bx : dx < 0 ? bx + w : bx + w / 2, y2: dy > 0 ? by : dy < 0 ? by + h : by + h / 2 };
        found = { id: q.id, text: q.text, x: tx, y: by + h / 2, anchor, box, leader };
        break;
      }
      if (found) break;
    }
    if (found) placed.push(found);
  }
  return placed;
}
