/**
 * The campaign report: one self-contained HTML string (inline CSS and SVG; no scripts, fonts,
 * images or any other external resource), with
 *   (a) energy per token (or the chosen energy metric) vs throughput per experiment, 95 % CI whiskers,
 *       Pareto front marked,
 *   (b) a per-cycle strip plot of a metric per experiment (drift / thermal effects),
 *   (c) the power timeline of a chosen run, when one is given,
 *   plus the summary table (and a comparison table when given). All text is escaped.
 */
import type { Aggregation, ExperimentAggregate } from '../aggregate.js';
import type { Comparison } from '../compare.js';
import { cycleStripPlot, energyThroughputPlot, powerTimelinePlot, type PowerSample } from './plots.js';
import { colour, escapeHtml, formatNumber } from './svg.js';

export interface ReportTimeline {
  runId: string;
  label?: string;
  samples: readonly PowerSample[];
}

export interface ReportInput {
  title?: string;
  aggregation: Aggregation;
  /** y of plot (a); default j_per_output_token, else the first j_per_* metric, else energy_total_j, else energy_gpu_j. */
  energyMetric?: string;
  /** x of plot (a); default output_tokens_per_s, else tokens_per_s, else the first *_per_s metric. */
  throughputMetric?: string;
  /** Metric of plot (b); default the energy metric. */
  stripMetric?: string;
  /** Table columns; default energy, throughput, then energy_gpu_j, energy_total_j, latency_p50_s, ttft_p50_s when present. */
  summaryMetrics?: readonly string[];
  timeline?: ReportTimeline | null;
  comparison?: Comparison | null;
  /** Free-text lines shown under the title (e.g. campaign id, seed, host). */
  notes?: readonly string[];
}

export interface ReportChoices {
  energyMetric: string | null;
  throughputMetric: string | null;
  stripMetric: string | null;
  summaryMetrics: string[];
}

/** The metrics the report will use for `input` (defaults resolved against the aggregation). */
export function reportChoices(input: ReportInput): ReportChoices {
  // Only metrics with at least one value count: a metric null everywhere (not measured on this host) would plot nothing.
  const names = input.aggregation.metricNames.filter((m) => input.aggregation.experiments.some((e) => e.metrics[m]?.description));
  const has = (m: string): boolean => names.includes(m);
  const energyMetric =
    input.energyMetric ??
    (has('j_per_output_token') ? 'j_per_output_token' : (names.find((m) => m.startsWith('j_per_')) ?? (has('energy_total_j') ? 'energy_total_j' : has('energy_gpu_j') ? 'energy_gpu_j' : null)));
  const throughputMetric =
    input.throughputMetric ??
    (has('output_tokens_per_s') ? 'output_tokens_per_s' : has('tokens_per_s') ? 'tokens_per_s' : (names.find((m) => m.endsWith('_per_s')) ?? null));
  const stripMetric = input.stripMetric ?? energyMetric;
  const summary =
    input.summaryMetrics !== undefined
      ? [...input.summaryMetrics]
      : [energyMetric, throughputMetric, 'energy_gpu_j', 'energy_total_j', 'latency_p50_s', 'ttft_p50_s'].filter(
          (m, i, a): m is string => m !== null && has(m) && a.indexOf(m) === i,
        );
  return { energyMetric, throughputMetric, stripMetric, summaryMetrics: summary };
}

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1100px;color:#1b1f24;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
p.note{margin:2px 0;color:#57606a}
table{border-collapse:collapse;margin:8px 0;font-variant-numeric:tabular-nums}
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:right;vertical-align:top}
th{background:#f6f8fa}td.text,th.text{text-align:left}
.ci{color:#57606a;font-size:12px}
.swatch{display:inline-block;width:10px;height:10px;border-radius:50%;margin-right:6px;vertical-align:middle}
ul.legend{list-style:none;padding:0;margin:4px 0;display:flex;flex-wrap:wrap;gap:4px 18px}
svg.plot{background:#fff;border:1px solid #d0d7de;max-width:100%;height:auto}
svg .grid{stroke:#eaeef2;stroke-width:1}
svg .axis{stroke:#57606a;stroke-width:1}
svg text{font:12px system-ui,sans-serif;fill:#1b1f24}
svg text.tick{fill:#57606a;font-size:11px}
svg text.point-label{font-size:11px;fill:#333}
svg .ci-whisker{stroke-width:2;opacity:.75}
svg .point{stroke:#fff;stroke-width:1.5}
svg .point.pareto{stroke:#111;stroke-width:2.5}
svg .pareto-front{fill:none;stroke:#111;stroke-width:1.5;stroke-dasharray:5 4}
svg .strip-line{fill:none;stroke-width:1.2;opacity:.6}
svg .strip-point{stroke-width:1.5;opacity:.9}
svg .power-line{fill:none;stroke:#D55E00;stroke-width:1.5}
svg .mean-power{stroke:#0072B2;stroke-width:1;stroke-dasharray:4 3}
.warn{color:#9a6700}
`;

function cell(e: ExperimentAggregate, metric: string): string {
  const s = e.metrics[metric];
  const d = s?.description;
  if (!d) return `<td>–${s && s.nullCount > 0 ? ` <span class="ci">(${s.nullCount} unmeasured)</span>` : ''}</td>`;
  const ci = d.ci95_bootstrap ?? d.ci95_t;
  const parts = [escapeHtml(formatNumber(d.mean))];
  if (ci) parts.push(`<br><span class="ci">[${escapeHtml(formatNumber(ci.low))}, ${escapeHtml(formatNumber(ci.high))}]</span>`);
  const extra: string[] = [`n=${d.n}`];
  if (d.cv !== null) extra.push(`CV ${(d.cv * 100).toFixed(1)} %`);
  const outliers = d.outliers.mild.length + d.outliers.extreme.length;
  if (outliers > 0) extra.push(`${outliers} outlier${outliers > 1 ? 's' : ''}`);
  if (s.nullCount > 0) extra.push(`${s.nullCount} unmeasured`);
  parts.push(`<br><span class="ci">${escapeHtml(extra.join(', '))}</span>`);
  return `<td>${parts.join('')}</td>`;
}

function legend(experiments: readonly ExperimentAggregate[]): string {
  return `<ul class="legend">${experiments
    .map((e, i) => `<li><span class="swatch" style="background:${colour(i)}"></span>${escapeHtml(e.name ?? e.experimentId)}</li>`)
    .join('')}</ul>`;
}

function summaryTable(agg: Aggregation, metrics: readonly string[]): string {
  const head = ['experiment', 'backend', 'runs used / total', 'failed', 'missing', 'flagged excluded'];
  const rows = agg.experiments.map((e, i) => {
    const c = e.counts;
    return `<tr><td class="text"><span class="swatch" style="background:${colour(i)}"></span>${escapeHtml(e.name ?? e.experimentId)}</td><td class="text">${escapeHtml(e.backend ?? '–')}</td><td>${c.used} / ${c.total}</td><td>${c.failed}</td><td>${c.missing}${e.missingCycles.length ? ` <span class="ci">(cycles ${escapeHtml(e.missingCycles.join(', '))})</span>` : ''}</td><td>${c.flaggedExcluded}</td>${metrics.map((m) => cell(e, m)).join('')}</tr>`;
  });
  return `<table class="summary"><thead><tr>${head.map((h, i) => `<th${i < 2 ? ' class="text"' : ''}>${escapeHtml(h)}</th>`).join('')}${metrics
    .map((m) => `<th>${escapeHtml(m)}<br><span class="ci">mean [95 % CI]</span></th>`)
    .join('')}</tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function comparisonTable(c: Comparison): string {
  const rows = c.metrics.map((m) => {
    const v = m.verdict;
    const cls = v ? (v.status === 'outside' ? ' class="warn"' : '') : '';
    const ratioCi = m.ratioCi ? ` <span class="ci">[${escapeHtml(formatNumber(m.ratioCi.low))}, ${escapeHtml(formatNumber(m.ratioCi.high))}]</span>` : '';
    return `<tr><td class="text">${escapeHtml(m.metric)}</td><td>${escapeHtml(formatNumber(m.a.mean))}</td><td>${escapeHtml(formatNumber(m.b.mean))}</td><td>${escapeHtml(formatNumber(m.ratio))}${ratioCi}</td><td class="text"${cls}>${escapeHtml(v ? v.text : 'no tolerance class')}</td></tr>`;
  });
  return `<table class="comparison"><thead><tr><th class="text">metric</th><th>${escapeHtml(c.labels.a)} mean</th><th>${escapeHtml(c.labels.b)} mean</th><th>ratio B/A [95 % CI]</th><th class="text">verdict</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

/** Renders the whole report as one HTML document string. */
export function renderReport(input: ReportInput): string {
  const agg = input.aggregation;
  const title = input.title ?? 'lem campaign report';
  const ch = reportChoices(input);
  const o = agg.options;
  const out: string[] = [];
  out.push('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">');
  out.push('<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; style-src \'unsafe-inline\'; img-src data:">');
  out.push(`<title>${escapeHtml(title)}</title><style>${CSS}</style></head><body>`);
  out.push(`<h1>${escapeHtml(title)}</h1>`);
  for (const n of input.notes ?? []) out.push(`<p class="note">${escapeHtml(n)}</p>`);
  const t = agg.totals;
  out.push(
    `<p class="note">${escapeHtml(
      `${t.total} runs: ${t.used} used, ${t.failed} failed, ${t.missing} missing, ${t.flagged} flagged (${o.includeFlagged ? 'included' : `${t.flaggedExcluded} excluded`}). ` +
        `Intervals: 95 % ${o.method === 'bca' ? 'BCa' : 'percentile'} bootstrap of the mean (${o.resamples} resamples, seed ${String(o.seed)}); t-interval where the bootstrap is degenerate.`,
    )}</p>`,
  );

  out.push('<h2>Summary</h2>');
  out.push(summaryTable(agg, ch.summaryMetrics));

  out.push('<section id="energy-throughput"><h2>');
  if (ch.energyMetric && ch.throughputMetric) {
    out.push(`${escapeHtml(ch.energyMetric)} vs ${escapeHtml(ch.throughputMetric)}</h2>`);
    const r = energyThroughputPlot(agg.experiments, ch.energyMetric, ch.throughputMetric);
    out.push(r.svg, legend(agg.experiments));
    out.push(
      `<p class="note">Mean per experiment with 95 % CI whiskers. Bold outlined points and the dashed step line are the Pareto front (no other experiment is both faster and more frugal).${r.skipped.length ? ` Not plotted (metric missing): ${escapeHtml(r.skipped.join(', '))}.` : ''}</p>`,
    );
  } else out.push('Energy vs throughput</h2><p class="note">Not available: no energy or throughput metric.</p>');
  out.push('</section>');

  out.push('<section id="cycle-strip"><h2>');
  if (ch.stripMetric) {
    out.push(`${escapeHtml(ch.stripMetric)} per cycle</h2>`);
    out.push(cycleStripPlot(agg.experiments, ch.stripMetric).svg, legend(agg.experiments));
    out.push('<p class="note">One point per run; lines join per-cycle means. Hollow points are runs with validation flags. A trend across cycles suggests drift or thermal effects.</p>');
  } else out.push('Per-cycle values</h2><p class="note">Not available: no metric.</p>');
  out.push('</section>');

  out.push('<section id="power-timeline"><h2>Power timeline</h2>');
  if (input.timeline && input.timeline.samples.length > 0) {
    const r = powerTimelinePlot(input.timeline.samples);
    out.push(
      `<p class="note">${escapeHtml(`${input.timeline.label ?? `run ${input.timeline.runId}`}: ${r.points} samples, mean ${formatNumber(r.meanPowerW)} W, ${formatNumber(r.energyJ)} J (trapezoidal).`)}</p>`,
    );
    out.push(r.svg);
  } else out.push('<p class="note">No power timeline available for this report.</p>');
  out.push('</section>');

  if (input.comparison) {
    out.push(`<h2>${escapeHtml(`Comparison: ${input.comparison.labels.b} vs ${input.comparison.labels.a}`)}</h2>`);
    out.push(comparisonTable(input.comparison));
  }
  out.push('</body></html>\n');
  return out.join('');
}
