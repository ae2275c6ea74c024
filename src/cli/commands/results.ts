/** `lem results show | export | compare` and `lem report`: late aggregation over the manifest. */
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { aggregate, type AggregateOptions, type ExperimentRecord, type GroupBy, type RunRecord } from '../../results/aggregate.js';
import { compareRunSets, type Comparison } from '../../results/compare.js';
import { aiEnergyScoreFilesForRuns, writeAiEnergyScoreFiles } from '../../results/compat/ai-energy-score.js';
import { assemble, assembledRecords } from '../../results/import/assemble.js';
import { readImportSources } from '../../results/import/read.js';
import { toOptimumBenchmarkExport } from '../../results/compat/optimum-benchmark.js';
import { aggregationToCsv, aggregationToJson, runsToCsv, runsToJson, toJsonText, toUnifiedResults } from '../../results/export.js';
import { checkResultFiles, describeResultFileCheck, type ResultFileCheck } from '../../manifest/integrity.js';
import { campaignRecords, type CampaignRecords } from '../../results/records.js';
import { designNote } from '../../results/design-note.js';
import { phasesFromResult, powerSamplesFromResult, windowEnergyFromResult } from '../../results/report/timeline.js';
import { renderReport, reportChoices } from '../../results/report/html.js';
import { aggregateLabel, CI_METHOD_LABEL, intervalNotes, intervalPolicyLine, mainMetrics, pooledNotes, type ShownInterval } from '../../results/summary.js';
import { fewCyclesNote } from '../../results/stats.js';
import { EMISSION_METRICS, resolveIntensity, withEmissions, type Intensity } from '../../results/carbon.js';
import { toCodecarbonCsv } from '../../results/compat/codecarbon.js';
import { summariseValidation, validationExitCode, type FailOn } from '../../results/validate.js';
import { EXIT_OK, LemError } from '../../util/errors.js';
import { tolerancesFromCli, type ToleranceCli } from './tolerances.js';
import { printJson, type CliContext } from '../context.js';
import { importSources } from './results-import.js';
import { flaggedSummary, num, pct, table } from '../format.js';

export interface StatOptions {
  /** Overrides the campaign's carbon setting: gCO2eq/kWh, or a region of the shipped table. */
  carbonIntensity?: string;
  carbonRegion?: string;
  excludeFlagged?: boolean;
  method?: 'bca' | 'percentile';
  resamples?: string;
}

export function aggOptions(seed: number, o: StatOptions, groupBy?: GroupBy): AggregateOptions {
  const resamples = o.resamples === undefined ? undefined : Number(o.resamples);
  if (resamples !== undefined && (!Number.isInteger(resamples) || resamples < 100)) {
    throw new LemError(`--resamples must be an integer of at least 100, got '${o.resamples}'.`);
  }
  return { seed, includeFlagged: !o.excludeFlagged, ...(groupBy ? { groupBy } : {}), ...(o.method ? { method: o.method } : {}), ...(resamples ? { resamples } : {}) };
}

/** Result files behind the manifest that are gone or changed since ingest (said on stderr and in reports). */
const fileChecks = new Map<string, ResultFileCheck>(); // by campaign id: views derived from the records (emissions added) share it

function load(ctx: CliContext, id: string, withResults = false): CampaignRecords {
  const m = ctx.openManifest('read');
  try {
    const rec = campaignRecords(m, id, { withResults });
    // Results that are read anyway are hashed; otherwise existence and size are checked (cheap).
    const check = checkResultFiles(m.runs(rec.campaignId, ['succeeded']), { full: withResults });
    fileChecks.set(rec.campaignId, check);
    const said = describeResultFileCheck(check);
    if (said) ctx.err(`warning: ${said}`);
    return rec;
  } finally {
    m.close();
  }
}

function fileCheckJson(rec: CampaignRecords): Record<string, unknown> {
  const c = fileChecks.get(rec.campaignId);
  const rows = (xs: ResultFileCheck['missing']) => xs.map((x) => ({ position: x.position, experiment_id: x.experimentId, cycle: x.cycle, path: x.path }));
  return { checked: c?.checked ?? 0, missing: rows(c?.missing ?? []), changed: rows(c?.changed ?? []) };
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
  const agg = aggregate(rec.runs, rec.experiments, aggOptions(rec.seed, o, rec.groupBy));
  const sources = importSources(ctx, rec.campaignId);
  const carbon = intensity ? { intensity_g_per_kwh: intensity.g_per_kwh, source: intensity.source, region: intensity.region } : null;
  if (o.json) {
    const design = rec.design ? { ...rec.design, note: designNote(rec.design) } : null;
    printJson(ctx, 'results.show', { campaign: rec.campaignId, carbon, ...(sources.length ? { imported_from: sources } : {}), ...aggregationToJson(agg), design, result_files: fileCheckJson(rec) });
    return EXIT_OK;
  }
  const rows: string[][] = [];
  const shown: ShownInterval[] = [];
  const ci = (i: { low: number; high: number } | null | undefined): string => (i ? `[${num(i.low)}, ${num(i.high)}]` : '—');
  for (const e of agg.experiments) {
    const main = mainMetrics(agg, e.backend, e.metrics);
    const withCarbon = intensity ? [...main, ...EMISSION_METRICS.filter((m) => !main.includes(m))] : main;
    const wanted = o.all ? agg.metricNames : withCarbon.filter((m) => agg.metricNames.includes(m));
    for (const metric of wanted) {
      const d = e.metrics[metric]?.description ?? null;
      shown.push({ metric, d });
      rows.push([
        aggregateLabel(e),
        metric,
        `${d?.n ?? 0}/${e.counts.total}`,
        num(d?.mean),
        num(d?.std),
        pct(d?.cv),
        ci(d?.ci95),
        ci(d?.ci95_bootstrap),
        d?.outliers ? String(d.outliers.mild.length + d.outliers.extreme.length) : '0',
      ]);
    }
  }
  // The bootstrap column only when some interval in it was computed (n ≥ 30, or --method given).
  const withBoot = shown.some(({ d }) => d?.ci95_bootstrap);
  const header = ['experiment', 'metric', 'n', 'mean', 'std', 'CV', `95% CI (${CI_METHOD_LABEL[agg.options.ci_method]})`, `95% CI (${CI_METHOD_LABEL[agg.options.method]})`, 'outliers'];
  const keep = (r: string[]): string[] => (withBoot ? r : r.filter((_, i) => i !== 7));
  ctx.out(`campaign ${rec.campaignId}: ${agg.totals.used} run(s) used of ${agg.totals.total} (${agg.totals.failed} failed, ${agg.totals.missing} missing, ${flaggedSummary(agg.totals.flagged, agg.totals.flaggedByGate)}${agg.totals.flaggedExcluded ? `, ${agg.totals.flaggedExcluded} flagged excluded` : ''})`);
  for (const src of sources.slice(0, 5)) ctx.out(`imported from ${src.source_tool}${src.source_version ? ` ${src.source_version}` : ''}: ${src.path} (${src.format}, sha256 ${src.sha256.slice(0, 12)}…, ${src.runs} run(s))`);
  if (sources.length > 5) ctx.out(`… and ${sources.length - 5} more source file(s) (--json lists them all)`);
  ctx.out(table(keep(header), rows.map(keep), withBoot ? [2, 3, 4, 5, 8] : [2, 3, 4, 5, 7]));
  ctx.out(intervalPolicyLine(withBoot ? agg.options.method : null));
  for (const note of intervalNotes(shown)) ctx.out(`note: ${note}`);
  const design = designNote(rec.design ?? null);
  if (design) ctx.out(`note: ${design}`);
  for (const e of agg.experiments) if (e.missingCycles.length) ctx.out(`note: ${aggregateLabel(e)} has no result for cycle(s) ${e.missingCycles.join(', ')}`);
  for (const note of pooledNotes(agg.experiments)) ctx.out(`note: ${note}`);
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
  const agg = () => aggregate(rec.runs, rec.experiments, aggOptions(rec.seed, o, rec.groupBy));
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
 * One side of a comparison: a campaign id (all its runs, an imported campaign too), `CAMPAIGN/EXPERIMENT`
 * (one experiment, by id prefix or exact name), either with `@GPU_MODEL` (only the runs on that model;
 * needed when the side's runs ran on more than one model and the campaign does not pool them), or files another tool wrote (anything `lem results
 * import` reads: a file, a directory or a glob), read on the fly without recording them.
 */
/** A side that names files (it exists, has a glob, a file extension or a path prefix): never taken for a campaign. */
function looksLikePath(ref: string): boolean {
  return existsSync(ref) || /[*?]/.test(ref) || /\.(json|csv|txt)$/i.test(ref) || /^(\.{0,2}\/|~)/.test(ref);
}

export async function side(ctx: CliContext, ref: string): Promise<{ label: string; runs: RunRecord[]; experiments: ExperimentRecord[] }> {
  if (looksLikePath(ref)) {
    // Read as `lem results import` reads (directories, globs, repetitions as runs), without recording.
    const read = readImportSources([ref]);
    for (const f of read.files) for (const w of f.warnings) ctx.err(`note: ${f.path}: ${w}`);
    return { label: ref, ...assembledRecords(assemble(read.files)) };
  }
  // `…@MODEL`: only the runs on that GPU model.
  const at = ref.indexOf('@');
  const model = at < 0 ? null : ref.slice(at + 1);
  const base = at < 0 ? ref : ref.slice(0, at);
  const slash = base.indexOf('/');
  const rec = load(ctx, slash < 0 ? base : base.slice(0, slash));
  let label = rec.campaignId;
  let runs = rec.runs;
  let experiments = rec.experiments;
  if (slash >= 0) {
    const want = base.slice(slash + 1);
    const matches = rec.experiments.filter((e) => e.name === want || e.id.startsWith(want));
    if (matches.length !== 1) {
      throw new LemError(
        `${matches.length === 0 ? 'no' : 'more than one'} experiment '${want}' in ${rec.campaignId}; use an id prefix from \`lem results show ${rec.campaignId}\` (${rec.experiments.map((e) => e.id).join(', ')}).`,
      );
    }
    const e = matches[0] as ExperimentRecord;
    label = `${rec.campaignId}/${e.name}`;
    runs = rec.runs.filter((r) => r.experimentId === e.id);
    experiments = [e];
  }
  const models = [...new Set(runs.flatMap((r) => (r.gpuModel ? [r.gpuModel] : [])))];
  if (model !== null) {
    if (!models.includes(model)) throw new LemError(`no run of ${label} ran on GPU model '${model}'; its runs ran on: ${models.join(', ') || 'no known model'}.`);
    return { label: `${label}@${model}`, runs: runs.filter((r) => r.gpuModel === model), experiments };
  }
  if (models.length > 1 && (rec.groupBy ?? 'gpu_model') === 'gpu_model') {
    throw new LemError(`the runs of ${label} ran on ${models.length} GPU models (${models.join(', ')}), which are not pooled (placement.group_by: gpu_model); compare one of them: '${label}@${models[0] ?? ''}'.`);
  }
  return { label, runs, experiments };
}

export async function resultsCompare(ctx: CliContext, a: string, b: string, o: StatOptions & ToleranceCli & { json?: boolean; failOn?: FailOn }): Promise<number> {
  const tolerances = tolerancesFromCli(o);
  const [sa, sb] = [await side(ctx, a), await side(ctx, b)];
  const opts = aggOptions(0, o);
  const cmp: Comparison = compareRunSets(sa.runs, sb.runs, { ...opts, tolerances, labels: { a: sa.label, b: sb.label } });
  const code = o.failOn ? validationExitCode(summariseValidation(cmp), o.failOn) : EXIT_OK;
  if (o.json) {
    printJson(ctx, 'results.compare', { ...cmp });
    return code;
  }
  ctx.out(`A = ${sa.label} (${cmp.counts.a.used} runs)\nB = ${sb.label} (${cmp.counts.b.used} runs)`);
  const measured = cmp.metrics.filter((m) => m.a.mean !== null || m.b.mean !== null);
  const withBoot = measured.some((m) => m.bootstrap?.ratioCi);
  const ratioCi = (i: { low: number; high: number } | null | undefined, unbounded = false): string =>
    i ? `[${i.low.toFixed(3)}, ${i.high.toFixed(3)}]` : unbounded ? 'unbounded' : '—';
  ctx.out(
    table(
      ['metric', 'mean A', 'mean B', 'B/A', `95% CI (${CI_METHOD_LABEL[cmp.options.ci_method.ratio]})`, ...(withBoot ? [`95% CI (${CI_METHOD_LABEL[cmp.options.method]})`] : []), 'verdict'],
      measured.map((m) => [
        m.metric,
        num(m.a.mean),
        num(m.b.mean),
        m.ratio === null ? '—' : m.ratio.toFixed(3),
        ratioCi(m.ratioCi, m.ratioUnbounded),
        ...(withBoot ? [ratioCi(m.bootstrap?.ratioCi)] : []),
        m.verdict?.text ?? '(no tolerance for this metric)',
      ]),
      withBoot ? [1, 2, 3, 4, 5] : [1, 2, 3, 4],
    ),
  );
  ctx.out(
    `intervals: 95 % ${CI_METHOD_LABEL.fieller} CI of the ratio of means B/A and ${CI_METHOD_LABEL.welch_t} CI of the difference (--json); verdicts use the ${CI_METHOD_LABEL.fieller} CI: within = wholly inside the tolerance, outside = wholly outside, else inconclusive`,
  );
  const minN = Math.min(...measured.map((m) => Math.min(m.a.n, m.b.n)).filter((n) => n > 0));
  const few = Number.isFinite(minN) ? fewCyclesNote(minN) : null;
  if (few) ctx.out(`note: ${few}`);
  const unmeasured = cmp.metrics.length - measured.length;
  if (unmeasured > 0) ctx.out(`(${unmeasured} metric(s) measured on neither side are not shown; --json lists them)`);
  if (o.failOn) ctx.out(`overall: ${summariseValidation(cmp).outcome} (--fail-on ${o.failOn}: exit ${code})`);
  return code;
}

export function report(ctx: CliContext, id: string, o: StatOptions & { out?: string; run?: string }): number {
  const rec = load(ctx, id, true);
  const byModel = aggregate(rec.runs, rec.experiments, aggOptions(rec.seed, o, rec.groupBy));
  // Each aggregate named with its GPU model when known (or the models it pooled).
  const agg = { ...byModel, experiments: byModel.experiments.map((e) => ({ ...e, name: aggregateLabel(e) })) };
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
    timeline:
      chosen && samples
        ? { runId: chosen.runId, samples, phases: phasesFromResult(chosen.result), flags: chosen.flags, window: windowEnergyFromResult(chosen.result) }
        : null,
    experiments: rec.experiments,
    notes: [
      `campaign ${rec.campaignId}, seed ${rec.seed}`,
      ...[designNote(rec.design ?? null)].filter((x): x is string => x !== null),
      samples ? `power timeline: run ${chosen?.runId}` : 'power timeline: no run of this campaign recorded power samples (no NVML on the host)',
      ...(fileChecks.get(rec.campaignId) ? [describeResultFileCheck(fileChecks.get(rec.campaignId) as ResultFileCheck, 20)].filter((x): x is string => x !== null) : []),
    ],
  });
  const path = resolve(o.out ?? join(ctx.stateDir, 'reports', `${rec.campaignId}.html`));
  mkdirSync(resolve(path, '..'), { recursive: true });
  writeFileSync(path, html);
  ctx.out(path);
  return EXIT_OK;
}
