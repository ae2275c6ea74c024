/** `lem results show | export | compare` and `lem report`: late aggregation over the manifest. */
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { basename, extname, join, resolve } from 'node:path';
import { aggregate, type AggregateOptions, type ExperimentRecord, type RunRecord } from '../../results/aggregate.js';
import { compareRunSets, type Comparison } from '../../results/compare.js';
import { aiEnergyScoreFilesForRuns, writeAiEnergyScoreFiles } from '../../results/compat/ai-energy-score.js';
import { readAiEnergyBenchmarksCsv, readOptimumBenchmarkReport } from '../../results/compat/import.js';
import { toOptimumBenchmarkExport } from '../../results/compat/optimum-benchmark.js';
import { aggregationToCsv, aggregationToJson, runsToCsv, runsToJson, toJsonText, toUnifiedResults } from '../../results/export.js';
import { campaignRecords, type CampaignRecords } from '../../results/records.js';
import { powerSamplesFromResult } from '../../results/report/plots.js';
import { renderReport, reportChoices } from '../../results/report/html.js';
import { mainMetrics } from '../../results/summary.js';
import { EMISSION_METRICS, resolveIntensity, withEmissions, type Intensity } from '../../results/carbon.js';
import { toCodecarbonCsv } from '../../results/compat/codecarbon.js';
import { summariseValidation, validationExitCode, type FailOn } from '../../results/validate.js';
import { EXIT_OK, LemError } from '../../util/errors.js';
import { tolerancesFromCli, type ToleranceCli } from './tolerances.js';
import { printJson, type CliContext } from '../context.js';
import { num, pct, table } from '../format.js';

export interface StatOptions {
  /** Overrides the campaign's carbon setting: gCO2eq/kWh, or a region of the shipped table. */
  carbonIntensity?: string;
  carbonRegion?: string;
  excludeFlagged?: boolean;
  method?: 'bca' | 'percentile';
  resamples?: string;
}

export function aggOptions(seed: number, o: StatOptions): AggregateOptions {
  const resamples = o.resamples === undefined ? undefined : Number(o.resamples);
  if (resamples !== undefined && (!Number.isInteger(resamples) || resamples < 100)) {
    throw new LemError(`--resamples must be an integer of at least 100, got '${o.resamples}'.`);
  }
  return { seed, includeFlagged: !o.excludeFlagged, ...(o.method ? { method: o.method } : {}), ...(resamples ? { resamples } : {}) };
}

function load(ctx: CliContext, id: string, withResults = false): CampaignRecords {
  const m = ctx.openManifest();
  try {
    return campaignRecords(m, id, { withResults });
  } finally {
    m.close();
  }
}

/** The carbon intensity for a campaign's views: a CLI override, else the campaign's `carbon:` setting. */
function intensityFor(rec: CampaignRecords, o: StatOptions): Intensity | null {
  if (o.carbonIntensity !== undefined && o.carbonRegion !== undefined) throw new LemError('give --carbon-intensity or --carbon-region, not both.');
  if (o.carbonIntensity !== undefined) {
    const v = Number(o.carbonIntensity);
    if (!Number.isFinite(v) || v <= 0 || v > 5000) throw new LemError(`--carbon-intensity takes gCO2eq/kWh, a number above 0 (at most 5000), got '${o.carbonIntensity}'.`);
    return resolveIntensity({ intensity_g_per_kwh: v });
  }
  if (o.carbonRegion !== undefined) return resolveIntensity({ region: o.carbonRegion.toUpperCase() });
  return resolveIntensity(rec.carbon);
}

/** The campaign's records with emissions added beside energy when a carbon intensity is known. */
function loadWithCarbon(ctx: CliContext, id: string, o: StatOptions, withResults = false): { rec: CampaignRecords; intensity: Intensity | null } {
  const rec = load(ctx, id, withResults);
  const intensity = intensityFor(rec, o);
  return { rec: { ...rec, runs: withEmissions(rec.runs, intensity) }, intensity };
}

export function resultsShow(ctx: CliContext, id: string, o: StatOptions & { json?: boolean; all?: boolean }): number {
  const { rec, intensity } = loadWithCarbon(ctx, id, o);
  const agg = aggregate(rec.runs, rec.experiments, aggOptions(rec.seed, o));
  const carbon = intensity ? { intensity_g_per_kwh: intensity.g_per_kwh, source: intensity.source, region: intensity.region } : null;
  if (o.json) {
    printJson(ctx, { campaign: rec.campaignId, carbon, ...aggregationToJson(agg) });
    return EXIT_OK;
  }
  const rows: string[][] = [];
  for (const e of agg.experiments) {
    const main = mainMetrics(agg, e.backend);
    const withCarbon = intensity ? [...main, ...EMISSION_METRICS.filter((m) => !main.includes(m))] : main;
    const wanted = o.all ? agg.metricNames : withCarbon.filter((m) => agg.metricNames.includes(m));
    for (const metric of wanted) {
      const d = e.metrics[metric]?.description ?? null;
      rows.push([
        e.name ?? e.experimentId,
        metric,
        `${d?.n ?? 0}/${e.counts.total}`,
        num(d?.mean),
        num(d?.std),
        pct(d?.cv),
        d?.ci95_t ? `[${num(d.ci95_t.low)}, ${num(d.ci95_t.high)}]` : '—',
        d?.ci95_bootstrap ? `[${num(d.ci95_bootstrap.low)}, ${num(d.ci95_bootstrap.high)}]` : '—',
        d?.outliers ? String(d.outliers.mild.length + d.outliers.extreme.length) : '0',
      ]);
    }
  }
  ctx.out(`campaign ${rec.campaignId}: ${agg.totals.used} run(s) used of ${agg.totals.total} (${agg.totals.failed} failed, ${agg.totals.missing} missing, ${agg.totals.flagged} flagged${agg.totals.flaggedExcluded ? `, ${agg.totals.flaggedExcluded} flagged excluded` : ''})`);
  ctx.out(table(['experiment', 'metric', 'n', 'mean', 'std', 'CV', 't 95% CI', `${agg.options.method} 95% CI`, 'outliers'], rows, [2, 3, 4, 5, 8]));
  for (const e of agg.experiments) if (e.missingCycles.length) ctx.out(`note: ${e.name ?? e.experimentId} has no result for cycle(s) ${e.missingCycles.join(', ')}`);
  if (intensity) ctx.out(`emissions: ${intensity.g_per_kwh} gCO2eq/kWh (${intensity.source}) × energy_total_j`);
  return EXIT_OK;
}

export const EXPORT_FORMATS = ['csv', 'json', 'unified', 'ai-energy-score', 'optimum-benchmark', 'codecarbon'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

export async function resultsExport(
  ctx: CliContext,
  id: string,
  o: StatOptions & { format: ExportFormat; by?: 'run' | 'experiment' | 'cycle'; out?: string },
): Promise<number> {
  const { rec, intensity } = loadWithCarbon(ctx, id, o, o.format === 'unified' || o.format === 'optimum-benchmark' || o.format === 'codecarbon');
  const by = o.by ?? 'run';
  const emit = (text: string, defaultName: string): void => {
    if (!o.out) {
      process.stdout.write(text);
      return;
    }
    const path = existsSync(o.out) && statSync(o.out).isDirectory() ? join(o.out, defaultName) : resolve(o.out);
    writeFileSync(path, text);
    ctx.err(`wrote ${path}`);
  };
  const agg = () => aggregate(rec.runs, rec.experiments, aggOptions(rec.seed, o));
  switch (o.format) {
    case 'csv':
      emit(by === 'run' ? runsToCsv(rec.runs, rec.experiments) : aggregationToCsv(agg(), by), `${rec.campaignId}-${by}.csv`);
      return EXIT_OK;
    case 'json':
      emit(toJsonText(by === 'run' ? runsToJson(rec.runs, rec.experiments) : aggregationToJson(agg())), `${rec.campaignId}-${by}.json`);
      return EXIT_OK;
    case 'unified':
      emit(toJsonText(toUnifiedResults(rec.runs, rec.experiments)), `${rec.campaignId}-unified.json`);
      return EXIT_OK;
    case 'codecarbon': {
      if (!intensity) throw new LemError(`the codecarbon format needs a carbon intensity: add carbon: {region: CODE} or carbon: {intensity_g_per_kwh: N} to the campaign file, or pass --carbon-region / --carbon-intensity.`);
      emit(toCodecarbonCsv(rec.runs, rec.name, intensity), 'emissions.csv');
      return EXIT_OK;
    }
    case 'ai-energy-score':
    case 'optimum-benchmark': {
      const dir = resolve(o.out ?? join(ctx.stateDir, 'exports', rec.campaignId, o.format));
      const written = o.format === 'ai-energy-score' ? await writeAiEnergyScore(dir, rec) : writeOptimumBenchmark(ctx, dir, rec);
      if (written.length === 0) throw new LemError(`nothing to export as ${o.format}: no succeeded run has the metrics it needs (GPU energy for ai-energy-score, a prefill/decode phase for optimum-benchmark).`, 1);
      for (const w of written) ctx.err(`wrote ${w}`);
      return EXIT_OK;
    }
  }
}

/** One directory per experiment, averaged over its succeeded runs (AI Energy Score averages runs). */
async function writeAiEnergyScore(dir: string, rec: CampaignRecords): Promise<string[]> {
  const out: string[] = [];
  for (const e of rec.experiments) {
    const files = aiEnergyScoreFilesForRuns(rec.runs.filter((r) => r.experimentId === e.id && r.status === 'succeeded'));
    if (!files) continue;
    const sub = join(dir, e.id);
    mkdirSync(sub, { recursive: true });
    out.push(...(await writeAiEnergyScoreFiles(sub, files)));
  }
  return out;
}

/**
 * One benchmark_report.json per succeeded run: <dir>/<experiment>/c<cycle>/benchmark_report.json, with
 * a sidecar lem_export.json naming the run and the energy domains written as 0.0 (not measured).
 * A run with no optimum-benchmark phase (no prefill/decode split, nothing imported) is skipped with a note.
 */
function writeOptimumBenchmark(ctx: CliContext, dir: string, rec: CampaignRecords): string[] {
  const out: string[] = [];
  for (const r of rec.runs.filter((x) => x.status === 'succeeded')) {
    const ex = toOptimumBenchmarkExport(r);
    if (Object.keys(ex.report).length === 0) {
      ctx.err(`note: run ${r.runId} has no optimum-benchmark phase (no prefill/decode split measured); not exported`);
      continue;
    }
    const sub = join(dir, r.experimentId, `c${r.cycle}`);
    mkdirSync(sub, { recursive: true });
    const path = join(sub, 'benchmark_report.json');
    writeFileSync(path, toJsonText(ex.report));
    writeFileSync(
      join(sub, 'lem_export.json'),
      toJsonText({ run_id: r.runId, experiment_id: r.experimentId, cycle: r.cycle, unmeasured_energy_domains: ex.unmeasured_energy_domains, note: 'energy domains listed here were not measured by lem and are written as 0.0 in benchmark_report.json' }),
    );
    out.push(path);
  }
  return out;
}

/**
 * One side of a comparison: a campaign id (all its runs), `CAMPAIGN/EXPERIMENT` (one experiment,
 * by id prefix or exact name), or a file another tool wrote (optimum-benchmark benchmark_report.json,
 * ai_energy_benchmarks results .csv).
 */
export async function side(ctx: CliContext, ref: string): Promise<{ label: string; runs: RunRecord[]; experiments: ExperimentRecord[] }> {
  if (existsSync(ref) && /\.(json|csv)$/i.test(ref)) {
    const imported = ref.toLowerCase().endsWith('.csv')
      ? await readAiEnergyBenchmarksCsv(ref)
      : await readOptimumBenchmarkReport(ref, { runId: `import:${basename(ref)}`, experimentId: `import-${basename(ref, extname(ref))}` });
    for (const w of imported.warnings) ctx.err(`note: ${ref}: ${w}`);
    return { label: ref, runs: imported.runs, experiments: imported.experiments };
  }
  const slash = ref.indexOf('/');
  const rec = load(ctx, slash < 0 ? ref : ref.slice(0, slash));
  if (slash < 0) return { label: rec.campaignId, runs: rec.runs, experiments: rec.experiments };
  const want = ref.slice(slash + 1);
  const matches = rec.experiments.filter((e) => e.name === want || e.id.startsWith(want));
  if (matches.length !== 1) {
    throw new LemError(
      `${matches.length === 0 ? 'no' : 'more than one'} experiment '${want}' in ${rec.campaignId}; use an id prefix from \`lem results show ${rec.campaignId}\` (${rec.experiments.map((e) => e.id).join(', ')}).`,
    );
  }
  const e = matches[0] as ExperimentRecord;
  return { label: `${rec.campaignId}/${e.name}`, runs: rec.runs.filter((r) => r.experimentId === e.id), experiments: [e] };
}

export async function resultsCompare(ctx: CliContext, a: string, b: string, o: StatOptions & ToleranceCli & { json?: boolean; failOn?: FailOn }): Promise<number> {
  const tolerances = tolerancesFromCli(o);
  const [sa, sb] = [await side(ctx, a), await side(ctx, b)];
  const opts = aggOptions(0, o);
  const cmp: Comparison = compareRunSets(sa.runs, sb.runs, { ...opts, tolerances, labels: { a: sa.label, b: sb.label } });
  const code = o.failOn ? validationExitCode(summariseValidation(cmp), o.failOn) : EXIT_OK;
  if (o.json) {
    printJson(ctx, cmp);
    return code;
  }
  ctx.out(`A = ${sa.label} (${cmp.counts.a.used} runs)\nB = ${sb.label} (${cmp.counts.b.used} runs)`);
  const measured = cmp.metrics.filter((m) => m.a.mean !== null || m.b.mean !== null);
  ctx.out(
    table(
      ['metric', 'mean A', 'mean B', 'B/A', 'verdict'],
      measured.map((m) => [m.metric, num(m.a.mean), num(m.b.mean), m.ratio === null ? '—' : m.ratio.toFixed(3), m.verdict?.text ?? '(no tolerance for this metric)']),
      [1, 2, 3],
    ),
  );
  const unmeasured = cmp.metrics.length - measured.length;
  if (unmeasured > 0) ctx.out(`(${unmeasured} metric(s) measured on neither side are not shown; --json lists them)`);
  if (o.failOn) ctx.out(`overall: ${summariseValidation(cmp).outcome} (--fail-on ${o.failOn}: exit ${code})`);
  return code;
}

export function report(ctx: CliContext, id: string, o: StatOptions & { out?: string; run?: string }): number {
  const rec = load(ctx, id, true);
  const agg = aggregate(rec.runs, rec.experiments, aggOptions(rec.seed, o));
  const withTimeline = rec.runs.filter((r) => r.status === 'succeeded' && powerSamplesFromResult(r.result) !== null);
  const chosen = o.run !== undefined ? rec.runs.find((r) => r.runId === o.run || r.runId.endsWith(`:${o.run}`)) : withTimeline[0];
  if (o.run !== undefined && !chosen) throw new LemError(`no run '${o.run}' in ${rec.campaignId}; give a run position (0-based) or a full run id.`);
  const samples = chosen ? powerSamplesFromResult(chosen.result) : null;
  // Without energy on this host (no NVML/RAPL), the per-cycle plot shows throughput instead.
  const choices = reportChoices({ aggregation: agg });
  const html = renderReport({
    title: `lem report — ${rec.campaignId}`,
    aggregation: agg,
    ...(choices.stripMetric === null && choices.throughputMetric !== null ? { stripMetric: choices.throughputMetric } : {}),
    timeline: chosen && samples ? { runId: chosen.runId, samples } : null,
    notes: [
      `campaign ${rec.campaignId}, seed ${rec.seed}, ${agg.options.method} bootstrap with ${agg.options.resamples} resamples`,
      samples ? `power timeline: run ${chosen?.runId}` : 'power timeline: no run of this campaign recorded power samples (no NVML on the host)',
    ],
  });
  const path = resolve(o.out ?? join(ctx.stateDir, 'reports', `${rec.campaignId}.html`));
  mkdirSync(resolve(path, '..'), { recursive: true });
  writeFileSync(path, html);
  ctx.out(path);
  return EXIT_OK;
}
