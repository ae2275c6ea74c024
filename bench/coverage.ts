/**
 * Coverage of lem's 95 % intervals, by seeded simulation: for each distribution and n, draw
 * `replications` samples, compute each interval, count how often it contains the true value.
 * Prints the table the README carries (README "Intervals"). Pure apart from printing; seeded.
 */
import { bootstrapMeanCi } from '../src/results/stats.js';
import { fiellerRatioInterval, headlineInterval, welchDifferenceInterval, type Interval } from '../src/results/intervals.js';
import { createRng, type Rng } from '../src/util/random.js';

export const COVERAGE_NS = [2, 3, 5, 10, 30] as const;

export interface Population {
  name: string;
  mean: number;
  draw(rng: Rng): number;
}

function gaussian(rng: Rng): number {
  const u1 = rng.next() || 1e-300;
  return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * rng.next());
}

/** Normal(100, 10): CV 10 %. */
export const NORMAL: Population = { name: 'normal(100, 10)', mean: 100, draw: (r) => 100 + 10 * gaussian(r) };
/** Lognormal, σ = 0.5 on the log scale (skewness ≈ 1.75), scaled to mean 100. */
const SIGMA = 0.5;
export const LOGNORMAL: Population = {
  name: 'lognormal(σ=0.5)',
  mean: 100,
  draw: (r) => 100 * Math.exp(SIGMA * gaussian(r) - (SIGMA * SIGMA) / 2),
};

export interface CoverageCell {
  population: string;
  interval: string;
  n: number;
  replications: number;
  coverage: number;
}

function covers(i: Interval | null, truth: number): boolean {
  return i !== null && i.low <= truth && truth <= i.high;
}

/** Coverage of the headline (t) and, when `bootstrapResamples` > 0, the BCa interval of the mean. */
export function meanCoverage(pop: Population, n: number, replications: number, bootstrapResamples: number, seed = 'coverage'): CoverageCell[] {
  const rng = createRng(`${seed}|${pop.name}|${n}`);
  let t = 0;
  let bca = 0;
  const xs = new Array<number>(n);
  for (let k = 0; k < replications; k++) {
    for (let i = 0; i < n; i++) xs[i] = pop.draw(rng);
    if (covers(headlineInterval(xs), pop.mean)) t++;
    if (bootstrapResamples > 0 && covers(bootstrapMeanCi(xs, { seed: k, resamples: bootstrapResamples })?.interval ?? null, pop.mean)) bca++;
  }
  const out: CoverageCell[] = [{ population: pop.name, interval: 't (headline)', n, replications, coverage: t / replications }];
  if (bootstrapResamples > 0) out.push({ population: pop.name, interval: `BCa (${bootstrapResamples} resamples)`, n, replications, coverage: bca / replications });
  return out;
}

/** Coverage of compare's Welch difference and Fieller ratio intervals, n values per side, B's mean 10 % above A's. */
export function compareCoverage(pop: Population, n: number, replications: number, seed = 'coverage-cmp'): CoverageCell[] {
  const rng = createRng(`${seed}|${pop.name}|${n}`);
  let d = 0;
  let r = 0;
  let unbounded = 0;
  const a = new Array<number>(n);
  const b = new Array<number>(n);
  for (let k = 0; k < replications; k++) {
    for (let i = 0; i < n; i++) a[i] = pop.draw(rng);
    for (let i = 0; i < n; i++) b[i] = 1.1 * pop.draw(rng);
    if (covers(welchDifferenceInterval(a, b), 0.1 * pop.mean)) d++;
    // An unbounded Fieller set (mean(A) not clearly away from 0) makes compare answer
    // 'inconclusive', never a wrong verdict: it counts as covering, and its rate is reported.
    const f = fiellerRatioInterval(a, b);
    if (f.unbounded) unbounded++;
    if (f.unbounded || covers(f.interval, 1.1)) r++;
  }
  return [
    { population: pop.name, interval: 'difference B−A (Welch t)', n, replications, coverage: d / replications },
    { population: pop.name, interval: 'ratio B/A (Fieller)', n, replications, coverage: r / replications },
    { population: pop.name, interval: '  of which unbounded (inconclusive)', n, replications, coverage: unbounded / replications },
  ];
}

/** The whole table, as printed lines (one row per population × interval, one column per n). */
export function coverageTable(replications: number, bootstrapResamples: number): string[] {
  const cells: CoverageCell[] = [];
  for (const pop of [NORMAL, LOGNORMAL]) {
    for (const n of COVERAGE_NS) cells.push(...meanCoverage(pop, n, replications, bootstrapResamples));
    for (const n of COVERAGE_NS) cells.push(...compareCoverage(pop, n, replications));
  }
  const rows = new Map<string, Map<number, number>>();
  for (const c of cells) {
    const key = `${c.population.padEnd(18)} ${c.interval}`;
    const row = rows.get(key) ?? new Map<number, number>();
    row.set(c.n, c.coverage);
    rows.set(key, row);
  }
  const width = Math.max(...[...rows.keys()].map((k) => k.length));
  const lines = [`${'nominal 95 %, coverage in %'.padEnd(width)}  ${COVERAGE_NS.map((n) => `n=${n}`.padStart(6)).join('')}`];
  for (const [k, row] of rows) lines.push(`${k.padEnd(width)}  ${COVERAGE_NS.map((n) => (100 * (row.get(n) ?? Number.NaN)).toFixed(1).padStart(6)).join('')}`);
  lines.push(`(${replications} seeded samples per cell; compare: n values per side, B = 1.1 × A in distribution)`);
  return lines;
}
