/**
 * LLenergyMeasure configs → lem campaign parts.
 *
 * v1 campaign: campaign_name → campaign_name; configs (v1 experiment files, relative to the campaign)
 *   → configs (converted inline); grid.backends → vary.backend; grid.axes (which v1 itself silently
 *   ignored: lem honours them) → vary; grid.models → vary model.id; grid.base_config / base_config
 *   → base_config; execution.cycles (or cycles) → cycles; execution.structure → structure;
 *   execution.config_gap_seconds → thermal_gap; execution.warmup_prompts → warmup.iterations;
 *   cold_start.force_cold_start → force_cold_start; daemon: → schedule: (see daemon.ts);
 *   execution.cycle_gap_seconds has no lem equivalent and becomes a comment.
 * v1 experiment: one experiment (see fields.ts) in a campaign of its own.
 * v2 study: sweep → vary (or expanded beside experiments); experiments → configs (each over the
 *   study's top-level base fields); execution.n_cycles → cycles; experiment_order → structure;
 *   experiment_gap_seconds → thermal_gap; shuffle_seed → seed; cycle_gap_seconds → comment.
 */
import { readFileSync, existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { convertDaemon } from './daemon.js';
import { mapAxis, mapLlemExperiment, type Mapped } from './fields.js';
import { campaignName, emptyConversion, isRecord, setPath, type Conversion } from './types.js';

const STRUCTURES: Record<string, string> = {
  interleaved: 'interleaved',
  interleave: 'interleaved',
  shuffled: 'shuffled',
  shuffle: 'shuffled',
  random: 'shuffled',
  grouped: 'grouped',
  sequential: 'grouped',
  blocked: 'grouped',
};

function deepMerge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = isRecord(v) && isRecord(out[k]) ? deepMerge(out[k] as Record<string, unknown>, v) : v;
  return out;
}

function llmDefaults(m: Record<string, unknown>): Record<string, unknown> {
  return m.backend === undefined ? { backend: 'pytorch', ...m } : m;
}

function execution(c: Conversion, exec: Record<string, unknown>, prefix: string): void {
  for (const [k, v] of Object.entries(exec)) {
    const key = `${prefix}${k}`;
    if (k === 'cycles' || k === 'n_cycles') c.settings.cycles = v;
    else if ((k === 'structure' || k === 'experiment_order' || k === 'order') && typeof v === 'string' && STRUCTURES[v]) c.settings.structure = STRUCTURES[v];
    else if (k === 'config_gap_seconds' || k === 'experiment_gap_seconds' || k === 'gap_seconds') c.settings.thermal_gap = v;
    else if (k === 'shuffle_seed' || k === 'seed') c.settings.seed = v;
    else if (k === 'warmup_prompts') continue; // per experiment: warmup.iterations (set by the caller)
    else if (k === 'cycle_gap_seconds') c.unmapped.push({ near: ['thermal_gap'], key, value: v, reason: 'lem waits thermal_gap between every two runs; it has no separate gap between cycles' });
    else c.unmapped.push({ near: [], key, value: v, reason: 'no lem campaign setting' });
  }
}

function addExperiment(c: Conversion, m: Mapped): Record<string, unknown> {
  c.unmapped.push(...m.unmapped);
  c.warnings.push(...m.warnings);
  return llmDefaults(m.out);
}

function readYamlFile(path: string): unknown {
  return parseYaml(readFileSync(path, 'utf8'));
}

export function convertLlemV1Experiment(src: Record<string, unknown>, fallbackName: string): Conversion {
  const c = emptyConversion('LLenergyMeasure v1 experiment');
  c.settings.campaign_name = campaignName(src.config_name ?? src.name, fallbackName);
  c.configs = [addExperiment(c, mapLlemExperiment(src, ['configs']))];
  return c;
}

export function convertLlemV1Campaign(src: Record<string, unknown>, file: string): Conversion {
  const c = emptyConversion('LLenergyMeasure v1 campaign');
  c.settings.campaign_name = campaignName(src.campaign_name, 'campaign');
  let warmup: unknown;
  for (const [k, v] of Object.entries(src)) {
    if (k === 'campaign_name') continue;
    if (k === 'execution' && isRecord(v)) {
      execution(c, v, 'execution.');
      warmup = v.warmup_prompts;
    } else if (k === 'cycles' || k === 'structure' || k === 'seed' || k === 'thermal_gap') execution(c, { [k]: v }, '');
    else if (k === 'cold_start' && isRecord(v)) {
      for (const [ck, cv] of Object.entries(v)) {
        if (ck === 'force_cold_start') c.settings.force_cold_start = cv;
        else c.unmapped.push({ near: ['force_cold_start'], key: `cold_start.${ck}`, value: cv, reason: 'no lem setting' });
      }
    } else if (k === 'daemon') {
      convertDaemon(c, v);
    } else if (k === 'configs' && Array.isArray(v)) {
      c.configs = [];
      v.forEach((ref, i) => {
        if (typeof ref === 'string') {
          const path = resolve(dirname(file), ref);
          if (!existsSync(path)) {
            c.unmapped.push({ near: ['configs'], key: `configs[${i}]`, value: ref, reason: `${path} does not exist` });
            c.warnings.push(`configs[${i}]: ${path} does not exist; left out`);
            return;
          }
          const data = readYamlFile(path);
          if (!isRecord(data)) {
            c.warnings.push(`configs[${i}]: ${path} is not a mapping; left out`);
            return;
          }
          (c.configs as Array<Record<string, unknown>>).push(addExperiment(c, mapLlemExperiment(data, ['configs'], `${ref}: `)));
        } else if (isRecord(ref)) (c.configs as Array<Record<string, unknown>>).push(addExperiment(c, mapLlemExperiment(ref, ['configs'], `configs[${i}].`)));
      });
    } else if (k === 'grid' && isRecord(v)) {
      let base: Record<string, unknown> = {};
      const vary: Record<string, unknown[]> = {};
      for (const [gk, gv] of Object.entries(v)) {
        if (gk === 'backends' && Array.isArray(gv)) {
          const axis = mapAxis('backend', gv, (s) => mapLlemExperiment(s, []));
          if ('key' in axis) vary.backend = axis.values;
          else c.unmapped.push({ near: ['vary'], key: 'grid.backends', value: gv, reason: axis.reason });
        } else if (gk === 'models' && Array.isArray(gv)) vary['model.id'] = gv;
        else if ((gk === 'base_config' || gk === 'base') && typeof gv === 'string') {
          const path = resolve(dirname(file), gv);
          const data = existsSync(path) ? readYamlFile(path) : null;
          if (isRecord(data)) base = deepMerge(base, addExperiment(c, mapLlemExperiment(data, ['base_config'], `${gv}: `)));
          else c.unmapped.push({ near: ['base_config'], key: `grid.${gk}`, value: gv, reason: `${path} is missing or not a mapping` });
        } else if ((gk === 'base_config' || gk === 'base') && isRecord(gv)) base = deepMerge(base, addExperiment(c, mapLlemExperiment(gv, ['base_config'], `grid.${gk}.`)));
        else if (gk === 'axes' && isRecord(gv)) {
          for (const [ak, av] of Object.entries(gv)) {
            const values = Array.isArray(av) ? av : [av];
            const axis = mapAxis(ak, values, (s) => mapLlemExperiment(s, []));
            if ('key' in axis) vary[axis.key] = axis.values;
            else c.unmapped.push({ near: ['vary'], key: `grid.axes.${ak}`, value: av, reason: axis.reason });
          }
        } else c.unmapped.push({ near: ['vary'], key: `grid.${gk}`, value: gv, reason: 'no lem grid field' });
      }
      if (isRecord(src.base_config)) base = deepMerge(base, addExperiment(c, mapLlemExperiment(src.base_config, ['base_config'], 'base_config.')));
      if (base.model === undefined && vary['model.id'] === undefined) c.warnings.push('the grid names no model: set base_config.model.id');
      c.base = base;
      c.vary = vary;
    } else if (k === 'base_config') {
      // read with the grid
    } else c.unmapped.push({ near: [], key: k, value: v, reason: 'no lem campaign setting' });
  }
  if (warmup !== undefined) {
    if (c.base) setPath(c.base, 'warmup.iterations', warmup);
    for (const cfg of c.configs ?? []) setPath(cfg, 'warmup.iterations', warmup);
  }
  if (c.base && !c.vary?.backend && c.base.backend === undefined) c.base.backend = 'pytorch';
  if (c.base && c.vary?.backend) delete c.base.backend;
  return c;
}

function cartesian(vary: Record<string, unknown[]>): Array<Array<[string, unknown]>> {
  let out: Array<Array<[string, unknown]>> = [[]];
  for (const [k, vs] of Object.entries(vary)) out = out.flatMap((p) => vs.map((v) => [...p, [k, v] as [string, unknown]]));
  return out;
}

export function convertLlemV2Study(src: Record<string, unknown>, fallbackName: string): Conversion {
  const c = emptyConversion('LLenergyMeasure v2 study');
  c.settings.campaign_name = campaignName(src.study_name ?? src.name, fallbackName);
  const baseSrc: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(src)) {
    if (k === 'study_name' || k === 'name' || k === 'sweep' || k === 'experiments') continue;
    if (k === 'execution' && isRecord(v)) execution(c, v, 'execution.');
    else if (k === 'base' && isRecord(v)) Object.assign(baseSrc, v);
    else if (k === 'output' || k === 'output_dir' || k === 'results_dir') c.unmapped.push({ near: [], key: k, value: v, reason: 'lem keeps results in its state directory (--state)' });
    else baseSrc[k] = v;
  }
  const base = addExperiment(c, mapLlemExperiment(baseSrc, ['base_config']));
  const vary: Record<string, unknown[]> = {};
  if (isRecord(src.sweep)) {
    for (const [k, v] of Object.entries(src.sweep)) {
      const values = Array.isArray(v) ? v : [v];
      const axis = mapAxis(k, values, (s) => mapLlemExperiment(s, []));
      if ('key' in axis) vary[axis.key] = axis.values;
      else c.unmapped.push({ near: ['vary'], key: `sweep.${k}`, value: v, reason: axis.reason });
    }
  }
  const explicit = Array.isArray(src.experiments)
    ? src.experiments.flatMap((e, i) => (isRecord(e) ? [deepMerge(base, addExperiment(c, mapLlemExperiment(e, ['configs'], `experiments[${i}].`)))] : []))
    : [];
  if (explicit.length === 0) {
    c.base = base;
    c.vary = vary;
    if (Object.keys(vary).length === 0) c.vary = null;
    if (!c.vary) {
      c.configs = [base];
      c.base = null;
    }
  } else {
    // lem's campaign is either a grid or a list: the sweep is expanded into the list.
    const swept = Object.keys(vary).length > 0
      ? cartesian(vary).map((combo) => {
          const cfg = structuredClone(base);
          for (const [k, v] of combo) setPath(cfg, k, v);
          return cfg;
        })
      : [];
    c.configs = [...swept, ...explicit];
    if (swept.length) c.warnings.push(`the sweep (${swept.length} combination(s)) is expanded into configs beside the ${explicit.length} listed experiment(s)`);
  }
  return c;
}
