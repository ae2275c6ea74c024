/**
 * Reading import sources: PATH arguments → one ImportedFile per source unit (a report, a CSV, a
 * result.json, an AI Energy Score summary, or the process files of one LLenergyMeasure v1 raw
 * directory), each with its checksum. Files beside the unit that only repeat it are read as
 * companions (checksummed, cross-checked), never imported twice:
 *   - benchmark.json beside benchmark_report.json (the same report wrapped with its config);
 *   - benchmark_config.json beside a bare report: the report's experiment config;
 *   - GPU_ENERGY_SUMMARY.json / GPU_ENERGY_WH.txt beside a report: AI Energy Score's summary of it
 *     (a total that disagrees with the report's phases is a warning);
 *   - raw/<id>/process_*.json when aggregated/<id>.json exists.
 * A file named on the command line that is not a result is an error (exit 2) saying what it looks
 * like and why; one found by walking a directory or a glob is skipped with a note.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { LemError } from '../../util/errors.js';
import { CsvSyntaxError } from '../compat/csv.js';
import { readAebCsv } from './aeb.js';
import { readLlemV1Aggregated, readLlemV1Processes, readLlemV2 } from './llem.js';
import { readObReport } from './optimum.js';
import { candidateFiles, displayPath, type Candidate } from './paths.js';
import { sniffText } from './sniff.js';
import { flagNonPositiveEnergy, isRecord, sortedMetrics, type ImportedFile, type ImportedRun, type SourceTool } from './types.js';

export interface ReadOutcome {
  files: ImportedFile[];
  /** Files found by a directory walk or a glob that are not results, with what they look like. */
  skipped: Array<{ path: string; reason: string }>;
}

const sha256 = (buf: Buffer | string): string => createHash('sha256').update(buf).digest('hex');

const REPORT = 'benchmark_report.json';
const WRAPPED = 'benchmark.json';
const OB_CONFIG = 'benchmark_config.json';
const AIES_SUMMARY = 'GPU_ENERGY_SUMMARY.json';
const AIES_WH = 'GPU_ENERGY_WH.txt';
const PROCESS = /^process_\d+\.json$/;

function notAResult(path: string, looksLike: string, why: string): LemError {
  return new LemError(`${displayPath(path)}: not a result file: it looks like ${looksLike}, and ${why}.`);
}

function file(path: string, tool: SourceTool, format: string, text: string): Omit<ImportedFile, 'experiments' | 'runs' | 'version' | 'warnings'> {
  return { path, sha256: sha256(text), tool, format, companions: [] };
}

function companion(path: string): { path: string; sha256: string } {
  return { path, sha256: sha256(readFileSync(path)) };
}

function aiesRun(summary: Record<string, unknown> | null, wh: number | null): ImportedRun {
  const metrics: Record<string, number | null> = {};
  const total = summary && typeof summary.total === 'number' ? summary.total : wh;
  metrics.energy_gpu_j = total === null ? null : total * 3600;
  if (summary) {
    for (const [k, v] of Object.entries(summary)) {
      const m = /^(.+)_wh$/.exec(k);
      if (!m || typeof v !== 'number') continue;
      metrics[`energy_gpu_${m[1]}_j`] = v * 3600;
      if (m[1] === 'prefill' || m[1] === 'decode' || m[1] === 'preprocess') metrics[`energy_${m[1]}_j`] = v * 3600;
    }
  }
  return { experiment: 0, status: 'succeeded', metrics: sortedMetrics(metrics), flags: [], unmeasured: {}, startedAt: null, endedAt: null, origin: summary ? AIES_SUMMARY : AIES_WH };
}

/** The AI Energy Score total (Wh) a report implies: the sum over preprocess, prefill, decode of each phase's mean GPU energy over the runs. */
function reportGpuWh(runs: readonly ImportedRun[]): number | null {
  let total: number | null = null;
  for (const p of ['preprocess', 'prefill', 'decode']) {
    const vs = runs.map((r) => r.metrics[`energy_gpu_${p}_j`]).filter((v): v is number => typeof v === 'number');
    if (vs.length) total = (total ?? 0) + vs.reduce((a, b) => a + b, 0) / vs.length / 3600;
  }
  return total;
}

function readJson(path: string): unknown {
  return JSON.parse(readFileSync(path, 'utf8')) as unknown;
}

/** Reads every source unit the PATH arguments name. */
export function readImportSources(paths: readonly string[]): ReadOutcome {
  const candidates = candidateFiles(paths);
  const files: ImportedFile[] = [];
  const skipped: ReadOutcome['skipped'] = [];
  const done = new Set<string>();
  const rawGroups = new Map<string, Candidate[]>();

  for (const c of candidates) {
    if (done.has(c.path)) continue;
    const name = basename(c.path);
    const dir = dirname(c.path);
    // LLenergyMeasure v1 raw process files: grouped per raw/<id>/ directory, read after the walk.
    if (PROCESS.test(name) && basename(dirname(dir)) === 'raw') {
      rawGroups.set(dir, [...(rawGroups.get(dir) ?? []), c]);
      continue;
    }
    if (!c.explicit) {
      const interesting = /\.(json|csv)$/i.test(name) || name === AIES_WH;
      if (!interesting) continue;
      if (name === WRAPPED && existsSync(join(dir, REPORT))) continue;
      if ((name === AIES_SUMMARY || name === AIES_WH) && (existsSync(join(dir, REPORT)) || existsSync(join(dir, WRAPPED)))) continue;
      if (name === AIES_WH && existsSync(join(dir, AIES_SUMMARY))) continue;
      if (name === OB_CONFIG && (existsSync(join(dir, REPORT)) || existsSync(join(dir, WRAPPED)))) continue;
    }
    done.add(c.path);
    const text = readFileSync(c.path, 'utf8');
    const sniffed = sniffText(c.path, text);
    if (!sniffed.ok) {
      if (c.explicit) throw notAResult(c.path, sniffed.looksLike, sniffed.why);
      skipped.push({ path: c.path, reason: `${sniffed.looksLike}: ${sniffed.why}` });
      continue;
    }
    const where = displayPath(c.path);
    switch (sniffed.kind) {
      case 'optimum-benchmark': {
        let json = sniffed.json as Record<string, unknown>;
        const base = file(c.path, 'optimum-benchmark', name === REPORT || name === WRAPPED ? name : 'optimum-benchmark report', text);
        const cfgPath = join(dir, OB_CONFIG);
        if (!isRecord(json.report) && existsSync(cfgPath)) {
          json = { config: readJson(cfgPath), report: json };
          base.companions.push(companion(cfgPath));
        }
        const ob = readObReport(json, basename(dir));
        const f: ImportedFile = { ...base, experiments: [ob.experiment], runs: ob.runs, version: ob.version, warnings: ob.warnings };
        for (const side of [AIES_SUMMARY, AIES_WH]) {
          const p = join(dir, side);
          if (!existsSync(p) || p === c.path) continue;
          f.companions.push(companion(p));
          done.add(p);
          const raw = readFileSync(p, 'utf8');
          const claimed = side === AIES_WH ? Number(raw.trim()) : ((): number | null => {
            try {
              const s = JSON.parse(raw) as unknown;
              return isRecord(s) && typeof s.total === 'number' ? s.total : null;
            } catch {
              return null;
            }
          })();
          const implied = reportGpuWh(ob.runs);
          if (claimed !== null && Number.isFinite(claimed) && implied !== null && Math.abs(claimed - implied) > 0.005 + 1e-9) {
            f.warnings.push(`${side} says ${claimed} Wh but the report's preprocess + prefill + decode GPU energy is ${implied.toFixed(4)} Wh`);
          }
        }
        files.push(f);
        break;
      }
      case 'aies-summary':
      case 'aies-wh': {
        const summary = sniffed.kind === 'aies-summary' ? (sniffed.json as Record<string, unknown>) : null;
        const wh = sniffed.kind === 'aies-wh' ? Number(text.trim()) : null;
        const f: ImportedFile = {
          ...file(c.path, 'ai-energy-score', name, text),
          experiments: [{ name: basename(dir), backend: 'ai-energy-score', config: { source: 'ai-energy-score', directory: basename(dir) } }],
          runs: [aiesRun(summary, wh)],
          version: null,
          warnings: [],
        };
        const whPath = join(dir, AIES_WH);
        if (summary && existsSync(whPath) && whPath !== c.path) {
          f.companions.push(companion(whPath));
          done.add(whPath);
          const txt = Number(readFileSync(whPath, 'utf8').trim());
          if (typeof summary.total === 'number' && Math.abs(txt - summary.total) > 0.005 + 1e-9) f.warnings.push(`${AIES_WH} says ${txt} Wh but ${AIES_SUMMARY} says ${summary.total} Wh`);
        }
        files.push(f);
        break;
      }
      case 'aeb-csv': {
        let aeb;
        try {
          aeb = readAebCsv(text);
        } catch (e) {
          if (e instanceof CsvSyntaxError) throw new LemError(`${where}${e.line !== null ? `:${e.line}` : ''}: malformed CSV: ${e.detail}.`);
          throw e;
        }
        if (!aeb.ok) {
          if (c.explicit) throw notAResult(c.path, aeb.looksLike, aeb.why);
          skipped.push({ path: c.path, reason: `${aeb.looksLike}: ${aeb.why}` });
          continue;
        }
        files.push({ ...file(c.path, 'ai_energy_benchmarks', `results CSV (${aeb.delimiter === ';' ? 'semicolon' : 'comma'}-separated)`, text), experiments: aeb.experiments, runs: aeb.runs, version: aeb.version, warnings: aeb.warnings });
        break;
      }
      case 'llem-v2': {
        const r = readLlemV2(sniffed.json as Record<string, unknown>);
        files.push({ ...file(c.path, 'llenergymeasure-v2', 'result.json', text), experiments: [r.experiment], runs: [r.run], version: r.version, warnings: r.warnings });
        break;
      }
      case 'llem-v1-aggregated': {
        const r = readLlemV1Aggregated(sniffed.json as Record<string, unknown>);
        files.push({ ...file(c.path, 'llenergymeasure-v1', 'aggregated result', text), experiments: [r.experiment], runs: [r.run], version: r.version, warnings: r.warnings });
        break;
      }
      case 'llem-v1-process': {
        // A process file outside raw/<id>/: one process is one run.
        const r = readLlemV1Processes([sniffed.json as Record<string, unknown>], basename(c.path, '.json'));
        files.push({ ...file(c.path, 'llenergymeasure-v1', 'process result', text), experiments: [r.experiment], runs: [r.run], version: r.version, warnings: r.warnings });
        break;
      }
    }
  }

  for (const [dir, group] of rawGroups) {
    const id = basename(dir);
    const aggregated = join(dirname(dirname(dir)), 'aggregated', `${id}.json`);
    if (existsSync(aggregated) && !group.some((g) => g.explicit)) {
      skipped.push({ path: dir, reason: `raw process files of ${id}: its aggregated result ${displayPath(aggregated)} is imported instead` });
      continue;
    }
    const sorted = [...group].sort((a, b) => a.path.localeCompare(b.path, undefined, { numeric: true }));
    const texts = sorted.map((g) => readFileSync(g.path, 'utf8'));
    const jsons = sorted.map((g, i) => {
      const s = sniffText(g.path, texts[i] as string);
      if (!s.ok || s.kind !== 'llem-v1-process') throw notAResult(g.path, s.ok ? s.kind : s.looksLike, s.ok ? 'a raw/<id>/ directory must hold LLenergyMeasure v1 process files only' : s.why);
      return s.json as Record<string, unknown>;
    });
    const r = readLlemV1Processes(jsons, id);
    files.push({
      path: dir,
      sha256: sha256(sorted.map((g, i) => `${basename(g.path)}:${sha256(texts[i] as string)}`).join('\n')),
      tool: 'llenergymeasure-v1',
      format: `raw process results (${sorted.length})`,
      companions: sorted.map((g, i) => ({ path: g.path, sha256: sha256(texts[i] as string) })),
      experiments: [r.experiment],
      runs: [r.run],
      version: r.version,
      warnings: r.warnings,
    });
  }

  for (const f of files) for (const r of f.runs) flagNonPositiveEnergy(r, f.warnings);
  if (files.length === 0) {
    const what = skipped.length ? ` (skipped: ${skipped.slice(0, 5).map((s) => `${displayPath(s.path)}: ${s.reason}`).join('; ')}${skipped.length > 5 ? '; …' : ''})` : '';
    throw new LemError(`no result file found in ${paths.join(', ')}${what}.`);
  }
  return { files, skipped };
}
