/**
 * The campaign report: one self-contained HTML string (inline CSS and SVG; no scripts, fonts,
 * images or any other external resource), with
 *   (a) energy per token (or the chosen energy metric) vs throughput per experiment, 95 % CI whiskers,
 *       Pareto front marked,
 *   (b) a per-cycle strip plot of a metric per experiment (drift / thermal effects),
 *   (c) the power timeline of a chosen run, when one is given,
 *   plus the summary table (and a comparison table when given). All text is escaped.
 */
import type { Aggregation, ExperimentAggregate, ExperimentRecord } from '../aggregate.js';
import type { Comparison } from '../compare.js';
import { FEW_CYCLES_N } from '../intervals.js';
import { intervalNotes } from '../summary.js';
import { cycleStripPlot, energyThroughputPlot } from './plots.js';
import { isRateSweep, RATE_PLOT_METRICS, ratePlot } from './rate.js';
import { colour, escapeHtml, formatNumber } from './svg.js';
import { phaseFill, phaseLabel, powerTimelinePlot, type PowerSample, type TimelinePhase, type WindowEnergy } from './timeline.js';
import { variedParameters } from './varied.js';

export interface ReportTimeline {
  runId: string;
  label?: string;
  samples: readonly PowerSample[];
  /** The worker's phases (result `timeline.phases`), drawn as bands. */
  phases?: readonly TimelinePhase[];
  /** The run's validation flags; a flagged run's trace is drawn with hollow markers. */
  flags?: readonly string[];
  /** The measured window's energy from the result's energy block (the caption's figure). */
  window?: WindowEnergy | null;
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
  /** Experiment configs: the parameters that differ between them become summary-table columns. */
  experiments?: readonly ExperimentRecord[];
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
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1232px;color:#1b1f24;padding:0 16px;box-sizing:border-box}
h1{font-size:22px;margin:0 0 4px;overflow-wrap:anywhere}h2{font-size:17px;margin:28px 0 8px;overflow-wrap:anywhere}
p.note{margin:2px 0;color:#57606a;overflow-wrap:anywhere}
table{border-collapse:collapse;margin:8px 0;font-variant-numeric:tabular-nums;max-width:100%}
table.summary{width:100%;table-layout:auto;font-size:13px}
th,td{border:1px solid #d0d7de;padding:4px 6px;text-align:right;vertical-align:top}
.nowrap{white-space:nowrap}
th{background:#f6f8fa}td.text,th.text{text-align:left}
td.name{min-width:8em;max-width:16em;overflow-wrap:anywhere}td.param,th.param{max-width:11em}
.ci{color:#57606a;font-size:12px}
.swatch{display:inline-block;width:10px;height:10px;border-radius:50%;margin-right:6px;vertical-align:middle}
.swatch.band{border-radius:2px;opacity:.5}
.swatch.hollow{background:#fff;border:1.5px solid #57606a;width:8px;height:8px}
ul.legend{list-style:none;padding:0;margin:4px 0;display:flex;flex-wrap:wrap;gap:4px 18px}
svg.plot{background:#fff;border:1px solid #d0d7de;max-width:100%;height:auto}
svg .grid{stroke:#eaeef2;stroke-width:1}
svg .axis{stroke:#57606a;stroke-width:1}
svg text{font:12px system-ui,sans-serif;fill:#1b1f24}
svg text.tick{fill:#57606a;font-size:11px}
svg text.point-label,svg text.phase-label{font-size:11px;fill:#333}
svg .label-leader{stroke:#8c959f;stroke-width:1}
svg .ci-whisker{stroke-width:2;opacity:.75}
svg .point{stroke:#fff;stroke-width:1.5}
svg .point.pareto{stroke:#111;stroke-width:2.5}
svg .run-point{stroke-width:1;opacity:.8}svg .run-point.flagged{stroke-width:1.5;opacity:1}
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
  const ci = d.ci95;
  const parts = [escapeHtml(formatNumber(d.mean))];
  if (ci) parts.push(`<br><span class="ci nowrap">[${escapeHtml(formatNumber(ci.low))}, ${escapeHtml(formatNumber(ci.high))}]</span>`);
  const extra: string[] = [`n=${d.n}${d.n < FEW_CYCLES_N ? ' (few)' : ''}`];
  if (d.cv !== null) extra.push(`CV ${(d.cv * 100).toFixed(1)} %`);
  const outliers = d.outliers.mild.length + d.outliers.extreme.length;
  if (outliers > 0) extra.push(`${outliers} outlier${outliers > 1 ? 's' : ''}`);
  if (s.nullCount > 0) extra.push(`${s.nullCount} unmeasured`);
  parts.push(`<br><span class="ci">${extra.map((x) => `<span class="nowrap">${escapeHtml(x)}</span>`).join(', ')}</span>`);
  return `<td>${parts.join('')}</td>`;
}

function legend(experiments: readonly ExperimentAggregate[]): string {
  return `<ul class="legend">${experiments
    .map((e, i) => `<li><span class="swatch" style="background:${colour(i)}"></span>${escapeHtml(e.name ?? e.experimentId)}</li>`)
    .join('')}</ul>`;
}

/** Breaks long identifiers after underscores, dots and slashes so table headers can wrap. */
function wrappable(text: string): string {
  return escapeHtml(text).replace(/([_./=-])/g, '$1<wbr>');
}

function summaryTable(agg: Aggregation, metrics: readonly string[], records: readonly ExperimentRecord[]): string {
  const varied = variedParameters(records);
  const params = varied.columns;
  const head = [
    '<th class="text">experiment</th>',
    ...params.map((p) => `<th class="text param">${wrappable(p)}</th>`),
    '<th>runs used / total</th>',
    '<th>failed / missing</th>',
    '<th>flagged (excluded)</th>',
    ...metrics.map((m) => `<th>${wrappable(m)}<br><span class="ci">mean [95 % CI]</span></th>`),
  ];
  const rows = agg.experiments.map((e, i) => {
    const c = e.counts;
    const values = varied.values.get(e.experimentId);
    return `<tr><td class="text name"><span class="swatch" style="background:${colour(i)}"></span>${wrappable(e.name ?? e.experimentId)}${
      params.length === 0 && e.backend ? ` <span class="ci">${escapeHtml(e.backend)}</span>` : ''
    }</td>${params.map((p) => `<td class="text param">${wrappable(values?.[p] ?? '–')}</td>`).join('')}<td>${c.used} / ${c.total}</td><td>${c.failed} / ${c.missing}${
      e.missingCycles.length ? ` <span class="ci">(cycles ${escapeHtml(e.missingCycles.join(', '))})</span>` : ''
    }</td><td>${c.flagged}${c.flaggedExcluded ? ` (${c.flaggedExcluded})` : ''}</td>${metrics.map((m) => cell(e, m)).join('')}</tr>`;
  });
  const more = varied.omitted > 0 ? `<p class="note">${varied.omitted} more varied parameter(s) not shown as columns.</p>` : '';
  return `<table class="summary"><thead><tr>${head.join('')}</tr></thead><tbody>${rows.join('')}</tbody></table>${more}`;
}

function comparisonTable(c: Comparison): string {
  const rows = c.metrics.map((m) => {
    const v = m.verdict;
    const cls = v ? (v.status === 'outside' ? ' class="warn"' : '') : '';
    const ratioCi = m.ratioCi
      ? ` <span class="ci">[${escapeHtml(formatNumber(m.ratioCi.low))}, ${escapeHtml(formatNumber(m.ratioCi.high))}]</span>`
      : m.ratioUnbounded
        ? ' <span class="ci">[unbounded]</span>'
        : '';
    return `<tr><td class="text">${escapeHtml(m.metric)}</td><td>${escapeHtml(formatNumber(m.a.mean))}</td><td>${escapeHtml(formatNumber(m.b.mean))}</td><td>${escapeHtml(formatNumber(m.ratio))}${ratioCi}</td><td class="text"${cls}>${escapeHtml(v ? v.text : 'no tolerance class')}</td></tr>`;
  });
  return `<table class="comparison"><thead><tr><th class="text">metric</th><th>${escapeHtml(c.labels.a)} mean</th><th>${escapeHtml(c.labels.b)} mean</th><th>ratio B/A [95 % Fieller CI]</th><th class="text">verdict</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

/** Renders the whole report as one HTML document string. */
/** Serving sweeps: energy per token and latency against the requested rate (traffic.rate_rps varied). */
function rateSection(agg: Aggregation): string {
  const out = ['<section id="rate-sweep"><h2>Against the request rate</h2>'];
  for (const m of RATE_PLOT_METRICS) {
    const measured = agg.experiments.some((e) => e.metrics[m]?.description);
    if (!measured) {
      const reason = agg.experiments.map((e) => e.metrics[m]).find((s) => s !== undefined) ? 'not measured on this host' : 'not in these results';
      out.push(`<p class="note">${escapeHtml(`${m} vs requested rate: ${reason}.`)}</p>`);
      continue;
    }
    out.push(`<h3>${escapeHtml(m)} vs requested rate</h3>`, ratePlot(agg.experiments, m).svg);
  }
  out.push('<p class="note">Mean per experiment with 95 % t-interval whiskers; lines join experiments that differ only in traffic.rate_rps. Energy per token is whole-GPU energy over the steady window attributed to the measured traffic.</p></section>');
  return out.join('');
}

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
      `${t.total} runs: ${t.used} used, ${t.failed} failed, ${t.missing} missing, ${t.flagged} flagged (${o.includeFlagged ? 'included; hollow markers in the plots' : `${t.flaggedExcluded} excluded`}).`,
    )}</p>`,
  );
  out.push(
    `<p class="note">${escapeHtml(
      `Intervals: 95 % Student t CI of the mean (ci_method "t"; it holds its coverage at every number of cycles for roughly normal run-to-run noise — README "Intervals"). ` +
        `Bootstrap intervals are not shown here: below 30 cycles they cover far less than 95 %.`,
    )}</p>`,
  );
  const shown = agg.experiments.flatMap((e) => ch.summaryMetrics.map((m) => ({ metric: m, d: e.metrics[m]?.description })));
  for (const note of intervalNotes(shown)) out.push(`<p class="note warn">${escapeHtml(`Note: ${note}`)}</p>`);

  out.push('<h2>Summary</h2>');
  out.push(summaryTable(agg, ch.summaryMetrics, input.experiments ?? []));

  out.push('<section id="energy-throughput"><h2>');
  if (ch.energyMetric && ch.throughputMetric) {
    out.push(`${escapeHtml(ch.energyMetric)} vs ${escapeHtml(ch.throughputMetric)}</h2>`);
    const r = energyThroughputPlot(agg.experiments, ch.energyMetric, ch.throughputMetric);
    out.push(r.svg, legend(agg.experiments));
    out.push(
      `<p class="note">Mean per experiment with 95 % t-interval whiskers; small dots are the runs (hollow: flagged). Bold outlined points and the dashed step line are the Pareto front (no other experiment is both faster and more frugal).${r.skipped.length ? ` Not plotted (metric missing): ${escapeHtml(r.skipped.join(', '))}.` : ''}${
        r.unlabelled.length ? ` Not labelled (no room without overlap; see the legend and tooltips): ${escapeHtml(r.unlabelled.join(', '))}.` : ''
      }</p>`,
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

  if (isRateSweep(agg.experiments)) out.push(rateSection(agg));

  out.push('<section id="power-timeline"><h2>Power timeline</h2>');
  if (input.timeline && input.timeline.samples.length > 0) {
    const tl = input.timeline;
    const flags = tl.flags ?? [];
    const r = powerTimelinePlot(tl.samples, { phases: tl.phases ?? [], flags });
    const w = tl.window ?? null;
    const windowText = w
      ? w.gpu_j !== null
        ? `measured window: ${formatNumber(w.gpu_j)} J GPU energy${w.window_s !== null ? ` over ${formatNumber(w.window_s)} s` : ''}${w.method ? ` (${w.method})` : ''}${
            w.total_j !== null && w.total_j !== w.gpu_j ? `, ${formatNumber(w.total_j)} J over all measured domains` : ''
          }`
        : `measured window: GPU energy not measured (${w.reason ?? 'no reason recorded'})`
      : 'measured window: energy not recorded in this result';
    out.push(
      `<p class="note">${escapeHtml(
        `${tl.label ?? `run ${tl.runId}`}: ${windowText}. The trace shows ${r.points} power samples across all phases (mean ${formatNumber(r.meanPowerW)} W).`,
      )}</p>`,
    );
    if (flags.length) out.push(`<p class="note warn">${escapeHtml(`This run is flagged (${flags.join(', ')}): its samples are drawn as hollow markers.`)}</p>`);
    out.push(r.svg);
    const names = [...new Set((tl.phases ?? []).map((p) => p.name))];
    if (names.length) {
      out.push(
        `<ul class="legend">${names.map((n) => `<li><span class="swatch band" style="background:${phaseFill(n)}"></span>${escapeHtml(phaseLabel(n))}</li>`).join('')}${
          flags.length ? '<li><span class="swatch hollow"></span>flagged run</li>' : ''
        }</ul>`,
      );
    }
  } else out.push('<p class="note">No power timeline available for this report.</p>');
  out.push('</section>');

  if (input.comparison) {
    out.push(`<h2>${escapeHtml(`Comparison: ${input.comparison.labels.b} vs ${input.comparison.labels.a}`)}</h2>`);
    out.push(comparisonTable(input.comparison));
  }
  out.push('</body></html>\n');
  return out.join('');
}
