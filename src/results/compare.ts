/**
 * Comparison of two sets of runs (experiment A vs B, or campaign A vs B), metric by metric.
 *
 * For every metric present in both sets: means, the ratio B/A and the difference B − A, each with a
 * 95 % CI that holds its coverage at small n (intervals.ts: Welch's t for the difference, Fieller's
 * interval for the ratio; `ci_method` says so), and a verdict against a tolerance for the metric's
 * class. A seeded bootstrap CI (BCa by default) is added as a secondary interval only when both
 * sides have ≥ 30 values or it is asked for (`method` / `bootstrap: 'always'`); verdicts never use it.
 *
 *
 *   class         pattern (first match wins)                         tolerance  better
 *   gpu_energy    energy_gpu*, energy_prefill*, energy_decode*        ±5 %       lower
 *                 (lem's energy_prefill_j / energy_decode_j are GPU energies)
 *   total_energy  energy_total*, j_per_*                              ±5 %       lower
 *   latency       latency*, ttft*, itl*                               ±10 %      lower
 *   throughput    *_per_s                                             ±10 %      higher
 *
 * Metrics outside these classes get no verdict. Verdict status:
 *   within        the whole ratio CI lies inside [1 − tol, 1 + tol] (equivalent within tolerance),
 *   outside       the whole ratio CI lies outside that band (a real change beyond tolerance),
 *   inconclusive  otherwise (more cycles needed).
 * Without a CI (fewer than 2 values on a side) the point estimate decides and `basis` is 'point'.
 * When the Fieller set is unbounded (mean(A) not clearly away from 0 — e.g. 2 very noisy cycles) the
 * verdict is 'inconclusive' on basis 'ci' and `ratioUnbounded` is true. With fewer than 5 values on
 * a side `ci_note` carries the few-cycles note.
 */
import {
  bootstrapMeansStatistic,
  type BootstrapMethod,
  type BootstrapWhen,
  DEFAULT_RESAMPLES,
  fewCyclesNote,
  fiellerRatioInterval,
  type Interval,
  showBootstrap,
  welchDifferenceInterval,
} from './stats.js';
import type { DifferenceMethod, RatioMethod } from './intervals.js';
import { collectMetricNames, isUsed, metricValue, countRuns, type RunCounts, type RunRecord } from './aggregate.js';

export type MetricClass = 'gpu_energy' | 'total_energy' | 'throughput' | 'latency';

export const DEFAULT_TOLERANCES: Readonly<Record<MetricClass, number>> = {
  gpu_energy: 0.05,
  total_energy: 0.05,
  throughput: 0.1,
  latency: 0.1,
};

const BETTER: Readonly<Record<MetricClass, 'lower' | 'higher'>> = {
  gpu_energy: 'lower',
  total_energy: 'lower',
  throughput: 'higher',
  latency: 'lower',
};

/** Maps a lem metric name to its tolerance class, or null. */
export function classifyMetric(name: string): MetricClass | null {
  if (name.startsWith('energy_gpu') || name.startsWith('energy_prefill') || name.startsWith('energy_decode')) return 'gpu_energy';
  if (name.startsWith('energy_total') || name.startsWith('j_per_')) return 'total_energy';
  if (name.startsWith('latency') || name.startsWith('ttft') || name.startsWith('itl')) return 'latency';
  if (name.endsWith('_per_s')) return 'throughput';
  return null;
}

export interface CompareOptions {
  seed?: number | string;
  resamples?: number;
  /** Secondary bootstrap method; default 'bca'. Giving it asks for the bootstrap at every n. */
  method?: BootstrapMethod;
  /** When to add the bootstrap CIs; default 'always' when `method` is given, else 'auto' (both sides n ≥ 30). */
  bootstrap?: BootstrapWhen;
  /** Count flagged runs; default true. */
  includeFlagged?: boolean;
  /** Override tolerances (fractions, e.g. 0.05 for ±5 %). */
  tolerances?: Partial<Record<MetricClass, number>>;
  /** Restrict to these metrics (default: metrics present in succeeded runs of both sets). */
  metrics?: readonly string[];
  labels?: { a: string; b: string };
}

export interface SideSummary {
  n: number;
  nullCount: number;
  mean: number | null;
  std: number | null;
}

export type VerdictStatus = 'within' | 'outside' | 'inconclusive';

export interface Verdict {
  class: MetricClass;
  /** Fraction, e.g. 0.05. */
  tolerance: number;
  status: VerdictStatus;
  basis: 'ci' | 'point';
  /** Which direction is an improvement for this class. */
  better: 'lower' | 'higher';
  /** Point estimate of B relative to A in the better direction: 'better', 'worse' or 'same' (equal means). */
  change: 'better' | 'worse' | 'same';
  /** e.g. "+3.2 % (95 % CI +1.0 % … +5.4 %): within ±5 %". */
  text: string;
}

export interface MetricComparison {
  metric: string;
  class: MetricClass | null;
  a: SideSummary;
  b: SideSummary;
  /** mean(B) − mean(A). */
  difference: number | null;
  /** Welch t 95 % CI of the difference; null with fewer than 2 values on a side. */
  differenceCi: Interval | null;
  /** mean(B) / mean(A); null when mean(A) is 0 or a side is empty. */
  ratio: number | null;
  /** Fieller 95 % CI of the ratio; null with fewer than 2 values on a side, or when unbounded. */
  ratioCi: Interval | null;
  /** The Fieller set is unbounded: the data do not bound the ratio (verdict inconclusive). */
  ratioUnbounded: boolean;
  /** Which intervals differenceCi and ratioCi are. */
  ci_method: { difference: DifferenceMethod; ratio: RatioMethod };
  /** The few-cycles note when a side has fewer than 5 values; else null. */
  ci_note: string | null;
  /** Secondary bootstrap CIs (see the module comment); null when not computed. */
  bootstrap: { method: BootstrapMethod; differenceCi: Interval | null; ratioCi: Interval | null } | null;
  /** ratio − 1. */
  relativeChange: number | null;
  verdict: Verdict | null;
}

export interface Comparison {
  labels: { a: string; b: string };
  options: {
    seed: number | string;
    resamples: number;
    method: BootstrapMethod;
    bootstrap: BootstrapWhen;
    ci_method: { difference: DifferenceMethod; ratio: RatioMethod };
    includeFlagged: boolean;
    tolerances: Record<MetricClass, number>;
  };
  counts: { a: RunCounts; b: RunCounts };
  metrics: MetricComparison[];
}

function side(values: readonly number[], nullCount: number): SideSummary {
  const n = values.length;
  if (n === 0) return { n, nullCount, mean: null, std: null };
  const mean = values.reduce((s, v) => s + v, 0) / n;
  const std = n >= 2 ? Math.sqrt(values.reduce((s, v) => s + (v - mean) ** 2, 0) / (n - 1)) : null;
  return { n, nullCount, mean, std };
}

function pctText(x: number): string {
  const v = x * 100;
  const s = Math.abs(v) < 0.05 ? '0.0' : v.toFixed(1);
  return `${v > 0 && s !== '0.0' ? '+' : ''}${s} %`;
}

function verdictFor(
  cls: MetricClass,
  tolerance: number,
  ratio: number,
  ratioCi: Interval | null,
  confidence: number,
  unbounded = false,
): Verdict {
  const lo = 1 - tolerance;
  const hi = 1 + tolerance;
  let status: VerdictStatus;
  let basis: 'ci' | 'point';
  if (ratioCi) {
    basis = 'ci';
    if (ratioCi.low >= lo && ratioCi.high <= hi) status = 'within';
    else if (ratioCi.low > hi || ratioCi.high < lo) status = 'outside';
    else status = 'inconclusive';
  } else if (unbounded) {
    basis = 'ci';
    status = 'inconclusive';
  } else {
    basis = 'point';
    status = ratio >= lo && ratio <= hi ? 'within' : 'outside';
  }
  const better = BETTER[cls];
  const change: Verdict['change'] = ratio === 1 ? 'same' : (ratio < 1) === (better === 'lower') ? 'better' : 'worse';
  const tol = `±${(tolerance * 100).toFixed(tolerance * 100 >= 1 && Number.isInteger(tolerance * 100) ? 0 : 1)} %`;
  const ci = ratioCi
    ? ` (${Math.round(confidence * 100)} % CI ${pctText(ratioCi.low - 1)} … ${pctText(ratioCi.high - 1)})`
    : unbounded
      ? ` (${Math.round(confidence * 100)} % CI unbounded: too few or too noisy values)`
      : ' (no CI)';
  const what = status === 'within' ? `within ${tol}` : status === 'outside' ? `outside ${tol}` : `inconclusive at ${tol}`;
  return { class: cls, tolerance, status, basis, better, change, text: `${pctText(ratio - 1)}${ci}: ${what}` };
}

const CI_METHOD: { difference: DifferenceMethod; ratio: RatioMethod } = { difference: 'welch_t', ratio: 'fieller' };

/** Compares two samples of one metric. */
export function compareSamples(
  metric: string,
  a: readonly number[],
  b: readonly number[],
  options: CompareOptions = {},
  nullCounts: { a: number; b: number } = { a: 0, b: 0 },
): MetricComparison {
  const seed = options.seed ?? 'lem';
  const resamples = options.resamples ?? DEFAULT_RESAMPLES;
  const method = options.method ?? 'bca';
  const when: BootstrapWhen = options.bootstrap ?? (options.method ? 'always' : 'auto');
  const tolerances = { ...DEFAULT_TOLERANCES, ...options.tolerances };
  const xa = a.filter((v) => Number.isFinite(v));
  const xb = b.filter((v) => Number.isFinite(v));
  const sa = side(xa, nullCounts.a);
  const sb = side(xb, nullCounts.b);
  const cls = classifyMetric(metric);
  const out: MetricComparison = {
    metric,
    class: cls,
    a: sa,
    b: sb,
    difference: null,
    differenceCi: null,
    ratio: null,
    ratioCi: null,
    ratioUnbounded: false,
    ci_method: { ...CI_METHOD },
    ci_note: null,
    bootstrap: null,
    relativeChange: null,
    verdict: null,
  };
  if (sa.mean === null || sb.mean === null) return out;
  out.ci_note = fewCyclesNote(Math.min(sa.n, sb.n));
  out.difference = sb.mean - sa.mean;
  out.differenceCi = welchDifferenceInterval(xa, xb, 0.95);
  const withBoot = when !== 'never' && showBootstrap(Math.min(sa.n, sb.n), when === 'always');
  const boot = { seed: `${String(seed)}|cmp|${metric}`, resamples, method };
  if (withBoot) {
    out.bootstrap = {
      method,
      differenceCi: bootstrapMeansStatistic([xa, xb], (m) => (m[1] as number) - (m[0] as number), boot)?.interval ?? null,
      ratioCi: null,
    };
  }
  if (sa.mean !== 0) {
    out.ratio = sb.mean / sa.mean;
    out.relativeChange = out.ratio - 1;
    const f = fiellerRatioInterval(xa, xb, 0.95);
    out.ratioCi = f.interval;
    out.ratioUnbounded = f.unbounded;
    if (out.bootstrap) out.bootstrap.ratioCi = bootstrapMeansStatistic([xa, xb], (m) => (m[1] as number) / (m[0] as number), boot)?.interval ?? null;
    if (cls) out.verdict = verdictFor(cls, tolerances[cls], out.ratio, out.ratioCi, 0.95, f.unbounded);
  }
  return out;
}

/** Compares two sets of runs (only succeeded runs count; flagged ones per `includeFlagged`). */
export function compareRunSets(a: readonly RunRecord[], b: readonly RunRecord[], options: CompareOptions = {}): Comparison {
  const includeFlagged = options.includeFlagged ?? true;
  const usedA = a.filter((r) => isUsed(r, includeFlagged));
  const usedB = b.filter((r) => isUsed(r, includeFlagged));
  const namesB = new Set(collectMetricNames(b));
  const metrics = options.metrics ? [...options.metrics] : collectMetricNames(a).filter((m) => namesB.has(m));
  const values = (runs: RunRecord[], m: string): { values: number[]; nulls: number } => {
    const vs: number[] = [];
    let nulls = 0;
    for (const r of runs) {
      const v = metricValue(r, m);
      if (v === null) nulls++;
      else vs.push(v);
    }
    return { values: vs, nulls };
  };
  return {
    labels: options.labels ?? { a: 'A', b: 'B' },
    options: {
      seed: options.seed ?? 'lem',
      resamples: options.resamples ?? DEFAULT_RESAMPLES,
      method: options.method ?? 'bca',
      bootstrap: options.bootstrap ?? (options.method ? 'always' : 'auto'),
      ci_method: { ...CI_METHOD },
      includeFlagged,
      tolerances: { ...DEFAULT_TOLERANCES, ...options.tolerances },
    },
    counts: { a: countRuns(a, includeFlagged), b: countRuns(b, includeFlagged) },
    metrics: metrics.map((m) => {
      const va = values(usedA, m);
      const vb = values(usedB, m);
      return compareSamples(m, va.values, vb.values, options, { a: va.nulls, b: vb.nulls });
    }),
  };
}

/** Experiment A vs experiment B within one set of runs. */
export function compareExperiments(
  runs: readonly RunRecord[],
  experimentA: string,
  experimentB: string,
  options: CompareOptions = {},
): Comparison {
  return compareRunSets(
    runs.filter((r) => r.experimentId === experimentA),
    runs.filter((r) => r.experimentId === experimentB),
    { labels: { a: experimentA, b: experimentB }, ...options },
  );
}
