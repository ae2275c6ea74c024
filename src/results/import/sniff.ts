/**
 * What a file is: a known result shape, or — when it is not a result — what it looks like and why
 * it is not one (a config, an empty file, an unrecognised shape). Pure: text in, verdict out.
 */
import { basename } from 'node:path';
import { isRecord } from './types.js';

export type ResultKind = 'optimum-benchmark' | 'aies-summary' | 'aies-wh' | 'aeb-csv' | 'llem-v1-aggregated' | 'llem-v1-process' | 'llem-v2';

export type Sniffed = { ok: true; kind: ResultKind; json: Record<string, unknown> | null } | { ok: false; looksLike: string; why: string };

const PHASE_KEYS = ['memory', 'latency', 'throughput', 'energy', 'efficiency'];

function hasPhases(o: Record<string, unknown>): boolean {
  return Object.values(o).some((v) => isRecord(v) && PHASE_KEYS.some((k) => k in v));
}

function keysText(o: Record<string, unknown>): string {
  const ks = Object.keys(o);
  return ks.length === 0 ? 'no keys' : `keys ${ks.slice(0, 8).join(', ')}${ks.length > 8 ? ', …' : ''}`;
}

/** Classifies a parsed JSON document. */
export function sniffJson(data: unknown): Sniffed {
  if (!isRecord(data)) {
    return { ok: false, looksLike: Array.isArray(data) ? `a JSON list of ${data.length} item(s)` : `a single JSON ${data === null ? 'null' : typeof data}`, why: 'every supported result file is a JSON object' };
  }
  const o = data;
  if (o.schema_version === '2.0' && 'total_energy_j' in o) return { ok: true, kind: 'llem-v2', json: o };
  if (isRecord(o.energy_metrics) && (isRecord(o.inference_metrics) || 'process_index' in o)) return { ok: true, kind: 'llem-v1-process', json: o };
  if ('total_energy_j' in o && (String(o.schema_version ?? '').startsWith('3.') || isRecord(o.aggregation))) return { ok: true, kind: 'llem-v1-aggregated', json: o };
  if (typeof o.units === 'string' && 'total' in o) {
    if (typeof o.total === 'number') return { ok: true, kind: 'aies-summary', json: o };
    return { ok: false, looksLike: 'an AI Energy Score GPU_ENERGY_SUMMARY.json', why: `its total is ${JSON.stringify(o.total)}, not a number` };
  }
  if (isRecord(o.report) && hasPhases(o.report)) return { ok: true, kind: 'optimum-benchmark', json: o };
  if (!('report' in o) && hasPhases(o)) return { ok: true, kind: 'optimum-benchmark', json: o };
  if (isRecord(o.backend) && ('scenario' in o || 'launcher' in o)) {
    return {
      ok: false,
      looksLike: 'an optimum-benchmark benchmark config (benchmark_config.json)',
      why: 'it says what to run (backend, scenario, launcher) and holds no measurement; import the benchmark_report.json written beside it, or convert the config with `lem config import`',
    };
  }
  if ('report' in o) return { ok: false, looksLike: 'an optimum-benchmark benchmark.json', why: 'its report has no phase with memory, latency, throughput, energy or efficiency' };
  if (o.schema_version === 3 && 'run_id' in o) return { ok: false, looksLike: "lem's own result file", why: 'lem records its own results when it runs them; there is nothing to import' };
  if ('study_name' in o && Array.isArray(o.runs)) {
    return { ok: false, looksLike: 'an LLenergyMeasure v2 study manifest.json', why: 'it lists the study\'s runs and their status; the measurements are in each run\'s result.json (import the study directory)' };
  }
  if ('campaign_name' in o || 'sweep' in o || 'experiments' in o) {
    return { ok: false, looksLike: 'a campaign or study config', why: 'it describes experiments to run and holds no measurement; convert it with `lem config import`' };
  }
  return {
    ok: false,
    looksLike: `a JSON object with ${keysText(o)}`,
    why: 'it matches no supported result: an optimum-benchmark report (phases with energy/latency), an AI Energy Score GPU_ENERGY_SUMMARY.json (units, total), an LLenergyMeasure v1 aggregated or process result (total_energy_j / energy_metrics) or v2 result.json (schema_version "2.0")',
  };
}

/** Classifies a file's text by its name and content. */
export function sniffText(path: string, text: string): Sniffed {
  const name = basename(path).toLowerCase();
  if (text.trim().length === 0) return { ok: false, looksLike: 'an empty file', why: 'it has no content' };
  if (name.endsWith('.csv') || name.endsWith('.tsv')) return { ok: true, kind: 'aeb-csv', json: null };
  if (name.endsWith('.yaml') || name.endsWith('.yml')) {
    return { ok: false, looksLike: 'a YAML file (a config?)', why: 'results are JSON, CSV or GPU_ENERGY_WH.txt; convert configs with `lem config import`' };
  }
  if (name.endsWith('.txt')) {
    if (/^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/.test(text)) return { ok: true, kind: 'aies-wh', json: null };
    return { ok: false, looksLike: 'a text file', why: 'the only text result is AI Energy Score GPU_ENERGY_WH.txt, which holds a single number' };
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    return { ok: false, looksLike: 'a file that is not JSON, CSV or a number', why: `JSON.parse: ${(e as Error).message}` };
  }
  return sniffJson(data);
}
