/**
 * `lem config import`: other tools' configs → one lem campaign YAML. Which converter applies is
 * recognised from the content (see `detect`); several files become one campaign listing all their
 * experiments. Keys without a lem equivalent are kept visible as `# lem: could not map …` comments
 * (yaml Document API) and listed as warnings; nothing is dropped silently.
 */
import { readFileSync } from 'node:fs';
import { basename, extname } from 'node:path';
import { Document, isMap, isScalar, parse as parseYaml, type YAMLMap } from 'yaml';
import { ConfigError } from '../../util/errors.js';
import { convertLlemV1Campaign, convertLlemV1Experiment, convertLlemV2Study } from './llem.js';
import { convertAiEnergyBenchmarks, convertOptimumHydra } from './optimum.js';
import { isRecord, setPath, type Conversion, type Unmapped } from './types.js';

export type SourceKind = 'llem-v1-campaign' | 'llem-v1-experiment' | 'llem-v2-study' | 'optimum-benchmark' | 'ai_energy_benchmarks';

const LEM_CAMPAIGN_KEYS = new Set(['campaign_name', 'configs', 'base_config', 'vary', 'cycles', 'structure', 'seed', 'thermal_gap', 'runtime', 'force_cold_start', 'retries', 'keep_services']);

/** Which converter a parsed config needs; a ConfigError (exit 2) when none or it is already lem's. */
export function detect(file: string, data: unknown): SourceKind {
  const fail = (problem: string): never => {
    throw new ConfigError({ file }, null, problem);
  };
  if (!isRecord(data)) return fail(`not a config lem can convert: expected a YAML mapping, got ${Array.isArray(data) ? 'a list' : data === null || data === undefined ? 'an empty file' : 'a single value'}.`);
  const d = data;
  if ('campaign_name' in d) {
    if ('grid' in d || 'execution' in d || 'daemon' in d || 'cold_start' in d) return 'llem-v1-campaign';
    if (Object.keys(d).every((k) => LEM_CAMPAIGN_KEYS.has(k))) {
      if ('base_config' in d || 'vary' in d || (Array.isArray(d.configs) && d.configs.every((c) => isRecord(c) && isRecord(c.model)))) {
        return fail('this is already a lem campaign; check it with `lem config validate`.');
      }
    }
    return 'llem-v1-campaign';
  }
  if ('sweep' in d || 'experiments' in d || 'study_name' in d || (isRecord(d.execution) && 'n_cycles' in d.execution)) return 'llem-v2-study';
  if (Array.isArray(d.defaults) || (isRecord(d.backend) && ('launcher' in d || 'hydra' in d || (isRecord(d.scenario) && !('type' in d.backend))))) {
    if (!(isRecord(d.backend) && 'type' in d.backend)) return 'optimum-benchmark';
  }
  if (isRecord(d.backend) && 'type' in d.backend) return 'ai_energy_benchmarks';
  if ('model_name' in d || 'fp_precision' in d || 'config_name' in d || (typeof d.model === 'string' && ('backend' in d || 'num_samples' in d || 'batching' in d))) return 'llem-v1-experiment';
  if (isRecord(d.model) && typeof d.backend === 'string') return fail('this is already a lem experiment config; list it under configs in a campaign, or check it with `lem config validate`.');
  const keys = Object.keys(d).slice(0, 8).join(', ');
  return fail(
    `not a config lem can convert (keys ${keys || 'none'}): expected an LLenergyMeasure v1 campaign (campaign_name with grid/execution) or experiment (model_name, fp_precision), an LLenergyMeasure v2 study (sweep, experiments, execution.n_cycles), an optimum-benchmark Hydra config (defaults, backend, scenario) or an ai_energy_benchmarks config (backend.type, scenario).`,
  );
}

export function convertData(file: string, data: unknown): Conversion {
  const kind = detect(file, data);
  const d = data as Record<string, unknown>;
  const name = basename(file, extname(file));
  switch (kind) {
    case 'llem-v1-campaign':
      return convertLlemV1Campaign(d, file);
    case 'llem-v1-experiment':
      return convertLlemV1Experiment(d, name);
    case 'llem-v2-study':
      return convertLlemV2Study(d, name);
    case 'optimum-benchmark':
      return convertOptimumHydra(d, name);
    case 'ai_energy_benchmarks':
      return convertAiEnergyBenchmarks(d, name);
  }
}

export function convertFile(file: string): Conversion {
  const text = readFileSync(file, 'utf8');
  let data: unknown;
  try {
    data = parseYaml(text);
  } catch (e) {
    throw new ConfigError({ file }, null, `not valid YAML: ${(e as Error).message.split('\n')[0]}`);
  }
  return convertData(file, data);
}

function expandGrid(base: Record<string, unknown>, vary: Record<string, unknown[]>): Array<Record<string, unknown>> {
  let out = [structuredClone(base)];
  for (const [k, vs] of Object.entries(vary)) {
    out = out.flatMap((cfg) =>
      vs.map((v) => {
        const c = structuredClone(cfg);
        setPath(c, k, v);
        return c;
      }),
    );
  }
  return out;
}

/** Several conversions as one: settings from the first file, experiments of all (grids expanded). */
export function combine(conversions: readonly Conversion[], files: readonly string[]): Conversion {
  if (conversions.length === 1) return conversions[0] as Conversion;
  const first = conversions[0] as Conversion;
  const out: Conversion = { kind: conversions.map((c) => c.kind).join(' + '), settings: { ...first.settings }, base: null, vary: null, configs: [], unmapped: [], warnings: [] };
  conversions.forEach((c, i) => {
    const file = basename(files[i] as string);
    out.unmapped.push(...c.unmapped.map((u) => ({ ...u, near: u.near[0] === 'configs' || u.near[0] === 'base_config' || u.near[0] === 'vary' ? ['configs'] : u.near, key: `${file}: ${u.key}` })));
    out.warnings.push(...c.warnings.map((w) => `${file}: ${w}`));
    for (const [k, v] of Object.entries(c.settings)) {
      if (k !== 'campaign_name' && out.settings[k] !== undefined && JSON.stringify(out.settings[k]) !== JSON.stringify(v)) out.warnings.push(`${file}: ${k} ${JSON.stringify(v)} differs from ${JSON.stringify(out.settings[k])} (first file); the first is kept`);
      else if (out.settings[k] === undefined) out.settings[k] = v;
    }
    const cfgs = c.configs ?? (c.base ? (c.vary ? expandGrid(c.base, c.vary) : [c.base]) : []);
    (out.configs as Array<Record<string, unknown>>).push(...cfgs);
  });
  return out;
}

/** The campaign as plain data, keys in lem's usual order. */
export function campaignObject(c: Conversion): Record<string, unknown> {
  const o: Record<string, unknown> = { campaign_name: c.settings.campaign_name ?? 'imported' };
  if (c.configs) o.configs = c.configs;
  else {
    o.base_config = c.base ?? {};
    if (c.vary && Object.keys(c.vary).length) o.vary = c.vary;
  }
  for (const k of ['cycles', 'structure', 'seed', 'thermal_gap', 'force_cold_start', 'schedule']) if (c.settings[k] !== undefined) o[k] = c.settings[k];
  o.runtime = 'docker';
  return o;
}

function short(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 80 ? `${s.slice(0, 77)}…` : s;
}

export function unmappedComment(u: Unmapped): string {
  return ` lem: could not map ${u.key}: ${short(u.value)} (${u.reason})`;
}

function addComment(node: { commentBefore?: string | null }, text: string): void {
  node.commentBefore = node.commentBefore ? `${node.commentBefore}\n${text}` : text;
}

/** The YAML text: the campaign with a `# lem: could not map …` comment at each unmapped key. */
export function toYaml(c: Conversion, sources: readonly string[]): string {
  const doc = new Document(campaignObject(c), { aliasDuplicateObjects: false });
  const root = doc.contents as YAMLMap;
  const header = [` Converted by \`lem config import\` from ${sources.join(', ')} (${c.kind}).`, ' Check it with: lem config validate <this file>'];
  const top: string[] = [];
  for (const u of c.unmapped) {
    const text = unmappedComment(u);
    let placed = false;
    if (u.near.length > 0) {
      let map: unknown = root;
      for (const seg of u.near.slice(0, -1)) map = isMap(map) ? map.get(seg, true) : null;
      if (isMap(map)) {
        const pair = map.items.find((p) => isScalar(p.key) && p.key.value === u.near[u.near.length - 1]);
        if (pair && isScalar(pair.key)) {
          addComment(pair.key, text);
          placed = true;
        }
      }
    }
    if (!placed) top.push(text);
  }
  doc.commentBefore = [...header, ...(top.length ? [''] : []), ...top].join('\n');
  return doc.toString({ lineWidth: 0 });
}
