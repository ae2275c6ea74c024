/**
 * AI Energy Score compatibility outputs (the files its summariser writes next to a benchmark report):
 *
 *   GPU_ENERGY_WH.txt        "%.2f\n" of the GPU energy in Wh
 *   GPU_ENERGY_SUMMARY.json  exactly {"units", "total", "format", "preprocess_wh", "prefill_wh", "decode_wh"},
 *                            the key set of the backend-switching design's summarize_gpu_wh.py
 *                            (huggingface/AIEnergyScore, commit 263909a "switchable benchmark runners")
 *
 * Which energy is reported (GPU only, raw — no idle-baseline subtraction — as the AI Energy Score does):
 * - If the run has per-phase GPU metrics for any of the AI Energy Score phases (preprocess, prefill,
 *   decode) — named `energy_gpu_<phase>_j` (imports) or lem's own `energy_prefill_j` /
 *   `energy_decode_j` (GPU energy per pass over the prompt set, the optimum-benchmark energy_star
 *   split) — `total` is the SUM OF THOSE PHASES (preprocess + prefill + decode, a missing phase
 *   counting 0, as in AI Energy Score's summarize_gpu_wh.py); format "optimum". Other phases
 *   (load_model, preprocess_dataset) are not summed, as that summariser does not.
 * - Otherwise `total` is the GPU energy of one pass: `energy_gpu_j / repetitions` (the window covers
 *   `repetitions` passes; without that metric, `energy_gpu_j` itself); format "ai_energy_benchmarks",
 *   whose breakdown puts everything under decode_wh (preprocess_wh = prefill_wh = 0.0), as the
 *   summariser does for that format.
 * - Neither present, or a phase metric null: the GPU energy is not measured and no files are produced.
 * Rounding is Python's (round-half-even on the exact binary value) and floats are written as Python's
 * repr, so the files are byte-identical to what the summariser writes (test/fixtures/compat/ holds a
 * re-implementation of it that the tests run on lem's optimum-benchmark export).
 *
 * For an aggregate (several runs of one experiment), each value is the mean over runs of the per-run
 * values (the AI Energy Score averages its runs); runs without GPU energy are skipped and counted.
 * Normalisation to "Wh per 1 000 queries" is not applied here: the files hold energy per benchmark run.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { RunRecord } from '../aggregate.js';

export const AI_ENERGY_SCORE_PHASES = ['preprocess', 'prefill', 'decode'] as const;
export type AiEnergyScorePhase = (typeof AI_ENERGY_SCORE_PHASES)[number];

export const GPU_ENERGY_WH_FILE = 'GPU_ENERGY_WH.txt';
export const GPU_ENERGY_SUMMARY_FILE = 'GPU_ENERGY_SUMMARY.json';

export interface GpuEnergyWh {
  /** Unrounded Wh. */
  totalWh: number;
  /** Unrounded Wh per phase present (empty when from the whole window). */
  phasesWh: Partial<Record<AiEnergyScorePhase, number>>;
  basis: 'phases' | 'window';
}

export interface AiEnergyScoreFiles {
  'GPU_ENERGY_WH.txt': string;
  'GPU_ENERGY_SUMMARY.json': string;
}

const J_PER_WH = 3600;

/** GPU energy of one run in Wh, or null when not measured. */
export function gpuEnergyWh(metrics: Record<string, number | null>): GpuEnergyWh | null {
  const phaseMetric = (p: AiEnergyScorePhase): string | null =>
    `energy_gpu_${p}_j` in metrics ? `energy_gpu_${p}_j` : `energy_${p}_j` in metrics ? `energy_${p}_j` : null;
  const present = AI_ENERGY_SCORE_PHASES.map((p) => [p, phaseMetric(p)] as const).filter(
    (e): e is readonly [AiEnergyScorePhase, string] => e[1] !== null,
  );
  if (present.length > 0) {
    const phasesWh: Partial<Record<AiEnergyScorePhase, number>> = {};
    let total = 0;
    for (const [p, name] of present) {
      const j = metrics[name];
      if (typeof j !== 'number' || !Number.isFinite(j)) return null;
      phasesWh[p] = j / J_PER_WH;
      total += j / J_PER_WH;
    }
    return { totalWh: total, phasesWh, basis: 'phases' };
  }
  const j = metrics.energy_gpu_j;
  if (typeof j !== 'number' || !Number.isFinite(j)) return null;
  const reps = metrics.repetitions;
  const passes = typeof reps === 'number' && Number.isFinite(reps) && reps >= 1 ? reps : 1;
  return { totalWh: j / passes / J_PER_WH, phasesWh: {}, basis: 'window' };
}

/**
 * x rounded to `digits` decimals as Python's "%.{digits}f" prints it: correctly rounded from the exact
 * binary value, ties (exactly representable halves) to even.
 */
export function pythonFixed(x: number, digits = 2): string {
  if (!Number.isFinite(x)) throw new RangeError(`not a finite number: ${x}`);
  if (Math.abs(x) >= 1e21) throw new RangeError(`too large for fixed notation: ${x}`);
  const exact = Math.abs(x).toFixed(100); // exact decimal expansion of the double (|x| < 1e21)
  const dot = exact.indexOf('.');
  const keep = exact.slice(0, dot + 1 + digits);
  const rest = exact.slice(dot + 1 + digits);
  const isTie = rest.length > 0 && rest[0] === '5' && /^5?0*$/.test(rest);
  let out = Math.abs(x).toFixed(digits);
  if (isTie) {
    // toFixed rounds exact ties up; Python rounds them to even.
    const lastDigit = Number(keep[keep.length - 1] === '.' ? keep[keep.length - 2] : keep[keep.length - 1]);
    if (lastDigit % 2 === 0) out = digits === 0 ? keep.slice(0, -1) : keep;
  }
  const negative = x < 0 || Object.is(x, -0);
  return negative ? `-${out}` : out;
}

/**
 * A float as Python's repr (and so json.dumps) writes it: the shortest round-tripping digits (the
 * same digits JavaScript picks), in fixed notation for exponents −4 … 15 (integral values keep ".0"),
 * otherwise as d.ddde±XX with at least two exponent digits ("1e-05", "1.5e+16").
 */
export function pyFloatRepr(x: number): string {
  if (!Number.isFinite(x)) throw new RangeError(`not a finite number: ${x}`);
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const [mant, expText] = Math.abs(x).toExponential().split('e') as [string, string];
  const exp = Number(expText);
  const digits = mant.replace('.', '');
  const sign = x < 0 ? '-' : '';
  if (exp >= -4 && exp < 16) {
    if (exp < 0) return `${sign}0.${'0'.repeat(-exp - 1)}${digits}`;
    const intPart = digits.slice(0, exp + 1).padEnd(exp + 1, '0');
    const frac = digits.slice(exp + 1);
    return `${sign}${intPart}.${frac === '' ? '0' : frac}`;
  }
  const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
  return `${sign}${m}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
}

function round2(x: number): number {
  return Number(pythonFixed(x, 2));
}

/**
 * File contents for a GPU energy (per-run or averaged), byte for byte what the backend-switching
 * design's summarize_gpu_wh.py writes (json.dumps(..., indent=2), no trailing newline):
 *   phases basis → format "optimum": total = round(preprocess + prefill + decode + 1e-12, 2), each
 *     `<phase>_wh` = round(phase, 2) (a phase not measured counts 0.0, as in its extract_phase_gpu_wh);
 *   window basis → format "ai_energy_benchmarks": total = the unrounded GPU Wh of one pass,
 *     preprocess_wh = prefill_wh = 0.0, decode_wh = round(total, 2) (its compatibility breakdown).
 * GPU_ENERGY_WH.txt is "%.2f\n" of that total.
 */
export function aiEnergyScoreFilesFromEnergy(e: GpuEnergyWh): AiEnergyScoreFiles {
  const phased = e.basis === 'phases';
  const per: Record<AiEnergyScorePhase, number> = phased
    ? { preprocess: e.phasesWh.preprocess ?? 0, prefill: e.phasesWh.prefill ?? 0, decode: e.phasesWh.decode ?? 0 }
    : { preprocess: 0, prefill: 0, decode: e.totalWh };
  const total = phased ? round2(per.preprocess + per.prefill + per.decode + 1e-12) : e.totalWh;
  const entries: [string, string][] = [
    ['units', '"Wh"'],
    ['total', pyFloatRepr(total)],
    ['format', phased ? '"optimum"' : '"ai_energy_benchmarks"'],
    ...AI_ENERGY_SCORE_PHASES.map((p): [string, string] => [`${p}_wh`, pyFloatRepr(round2(per[p]))]),
  ];
  return {
    'GPU_ENERGY_WH.txt': `${pythonFixed(total, 2)}\n`,
    'GPU_ENERGY_SUMMARY.json': `{\n${entries.map(([k, v]) => `  "${k}": ${v}`).join(',\n')}\n}`,
  };
}

/** Files for one run; null when its GPU energy was not measured. */
export function aiEnergyScoreFilesForRun(run: RunRecord): AiEnergyScoreFiles | null {
  const e = gpuEnergyWh(run.metrics);
  return e ? aiEnergyScoreFilesFromEnergy(e) : null;
}

export interface AveragedGpuEnergy extends GpuEnergyWh {
  runsUsed: number;
  runsSkipped: number;
}

/**
 * Mean GPU energy over succeeded runs (e.g. one experiment's cycles). Per-phase means only when every
 * used run has the same phase basis; a mix of phase and window runs averages totals only.
 */
export function averageGpuEnergy(runs: readonly RunRecord[]): AveragedGpuEnergy | null {
  const per = runs.filter((r) => r.status === 'succeeded').map((r) => gpuEnergyWh(r.metrics));
  const ok = per.filter((e): e is GpuEnergyWh => e !== null);
  if (ok.length === 0) return null;
  const total = ok.reduce((s, e) => s + e.totalWh, 0) / ok.length;
  const allPhases = ok.every((e) => e.basis === 'phases');
  const phasesWh: Partial<Record<AiEnergyScorePhase, number>> = {};
  if (allPhases) {
    for (const p of AI_ENERGY_SCORE_PHASES) {
      if (ok.some((e) => e.phasesWh[p] !== undefined)) phasesWh[p] = ok.reduce((s, e) => s + (e.phasesWh[p] ?? 0), 0) / ok.length;
    }
  }
  return { totalWh: total, phasesWh, basis: allPhases ? 'phases' : 'window', runsUsed: ok.length, runsSkipped: per.length - ok.length };
}

/** Files for an aggregate of runs; null when no run has GPU energy. */
export function aiEnergyScoreFilesForRuns(runs: readonly RunRecord[]): AiEnergyScoreFiles | null {
  const e = averageGpuEnergy(runs);
  return e ? aiEnergyScoreFilesFromEnergy(e) : null;
}

/** Writes the two files into `dir` (created if needed); returns the written paths. */
export async function writeAiEnergyScoreFiles(dir: string, files: AiEnergyScoreFiles): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const paths: string[] = [];
  for (const name of [GPU_ENERGY_WH_FILE, GPU_ENERGY_SUMMARY_FILE] as const) {
    const p = join(dir, name);
    await writeFile(p, files[name], 'utf8');
    paths.push(p);
  }
  return paths;
}
