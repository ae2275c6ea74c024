/**
 * Loading experiment configs and campaigns from disk into resolved, validated experiments.
 * Every error is a ConfigError located at file:line:column.
 */
import { existsSync, statSync } from 'node:fs';
import { basename, extname } from 'node:path';
import type { z } from 'zod';
import { ConfigError } from '../util/errors.js';
import { applyBackendEnv } from './backend-env.js';
import { CampaignFile, CampaignSettings, DEFAULT_MAX_RUNS, defaultStructure } from './campaign.js';
import { readCalibrationFile } from './calibration-file.js';
import { ExperimentConfig } from './experiment.js';
import { countGrid, expandGrid, formatAssignment, type GridFailure } from './grid.js';
import { experimentId } from './identity.js';
import { readSource, resolveFrom, schemaError, type PathKey, type SourceDoc } from './source.js';

export interface ResolvedExperiment {
  id: string;
  name: string;
  backend: ExperimentConfig['backend'];
  config: ExperimentConfig;
}

export interface LoadOptions {
  /** Overrides the campaign's `max_runs:` (from `--max-runs`). */
  maxRuns?: number;
  /** Called while a large grid is being expanded: combinations built so far, and the total. */
  onProgress?: (built: number, total: number) => void;
}

export interface LoadedCampaign {
  file: string;
  name: string;
  settings: CampaignSettings;
  experiments: ResolvedExperiment[];
  /** What the expansion did not run, and why (shown to the user). */
  notes: string[];
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function mustBeMapping(src: SourceDoc, data: unknown, at: readonly PathKey[], what: string): Record<string, unknown> {
  if (!isRecord(data)) {
    throw new ConfigError(src.locate(at), at.length ? at.join('.') : null, `${what} must be a YAML mapping of fields (key: value), not ${Array.isArray(data) ? 'a list' : data === null || data === undefined ? 'empty' : 'a single value'}.`);
  }
  return data;
}

/** A referenced file must exist; the error points at the reference, not just the missing path. */
function mustExist(src: SourceDoc, at: readonly PathKey[], path: string): void {
  if (!existsSync(path)) throw new ConfigError(src.locate(at), at.join('.'), `refers to ${path}, which does not exist (paths are relative to the campaign file).`);
  if (!statSync(path).isFile()) throw new ConfigError(src.locate(at), at.join('.'), `refers to ${path}, which is not a file.`);
}

export function loadExperimentFile(file: string): ExperimentConfig {
  const src = readSource(file);
  return validateExperiment(src, mustBeMapping(src, src.data, [], 'an experiment config'), []);
}

function validateExperiment(src: SourceDoc, data: Record<string, unknown>, prefix: readonly PathKey[]): ExperimentConfig {
  const parsed = ExperimentConfig.safeParse(applyBackendEnv(data).data, { reportInput: true });
  if (!parsed.success) throw schemaError(src, parsed.error, prefix);
  checkModelPath(src, parsed.data, [...prefix, 'model', 'id']);
  return parsed.data;
}

/** A model given as a local path must be an existing directory (or file) on this host. */
function checkModelPath(src: SourceDoc, cfg: ExperimentConfig, at: readonly PathKey[]): void {
  if (!('model' in cfg) || !cfg.model.id.startsWith('/')) return;
  if (!existsSync(cfg.model.id)) {
    throw new ConfigError(src.locate(at), 'model.id', `the local model path ${cfg.model.id} does not exist; give an existing absolute path or a Hugging Face id (org/name).`);
  }
}

function tooManyRuns(src: SourceDoc, at: readonly PathKey[], what: string, experiments: number, cycles: number, limit: number): ConfigError {
  const fmt = (n: number): string => n.toLocaleString('en-US');
  return new ConfigError(
    src.locate(at),
    null,
    `${what} ${fmt(experiments)} experiment(s) × ${fmt(cycles)} cycle(s) = ${fmt(experiments * cycles)} runs, more than the limit of ${fmt(limit)}; plan fewer (fewer configs, vary values or cycles), or raise the limit with max_runs: in the campaign file (or --max-runs N) if you mean it.`,
  );
}

function resolved(config: ExperimentConfig, fallbackName: string): ResolvedExperiment {
  return {
    id: experimentId(config as unknown as Record<string, unknown>),
    name: config.name ?? fallbackName,
    backend: config.backend,
    config,
  };
}

type ConfigRefValue = string | Record<string, unknown>;

/** Loads a campaign's `configs:` (files or inline configs), checking every one, so that one pass reports the problems of all of them. */
function loadConfigRefs(src: SourceDoc, file: string, refs: readonly ConfigRefValue[]): { list: ResolvedExperiment[]; errors: ConfigError[] } {
  const list: ResolvedExperiment[] = [];
  const errors: ConfigError[] = [];
  refs.forEach((ref, i) => {
    try {
      if (typeof ref === 'string') {
        const path = resolveFrom(file, ref);
        mustExist(src, ['configs', i], path);
        list.push(resolved(loadExperimentFile(path), basename(path, extname(path))));
      } else {
        list.push(resolved(validateExperiment(src, ref, ['configs', i]), `config-${i + 1}`));
      }
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      errors.push(e);
    }
  });
  return { list, errors };
}

export function loadCampaign(file: string, opts: LoadOptions = {}): LoadedCampaign {
  const src = readSource(file);
  const raw = mustBeMapping(src, src.data, [], 'a campaign file');
  const vary = raw['vary'];
  if (vary === null) throw new ConfigError(src.locate(['vary']), 'vary', 'vary is empty: list at least one dotted field path with its values (e.g. batching.batch_size: [1, 8]), or remove vary.');
  if (isRecord(vary) && '' in vary) {
    throw new ConfigError(src.locate(['vary']), 'vary', 'a key under vary is empty; each key is a dotted field path with a list of values, such as batching.batch_size: [1, 8].');
  }
  if (!('campaign_name' in raw) && 'backend' in raw) {
    throw new ConfigError(
      src.locate([]),
      null,
      'this is an experiment config, not a campaign: a campaign has campaign_name and either configs (a list of experiment files) or base_config and vary. Run a single config by listing it under configs in a campaign.',
    );
  }
  const parsed = CampaignFile.safeParse(raw, { reportInput: true });
  if (!parsed.success) {
    // The experiments are checked too (with the campaign's broken top-level fields left out), so
    // that one pass reports the campaign's problems and theirs.
    const errors = [schemaError(src, parsed.error)];
    const rest = withoutBrokenFields(raw, parsed.error);
    if (rest) {
      try {
        expandExperiments(src, file, rest, { ...(opts.maxRuns !== undefined ? { maxRuns: opts.maxRuns } : {}) }, []);
      } catch (e) {
        if (!(e instanceof ConfigError)) throw e;
        errors.push(e);
      }
    }
    throw errors.length > 1 ? ConfigError.merge(errors) : (errors[0] as ConfigError);
  }
  const c = parsed.data;
  const notes: string[] = [];
  const list = expandExperiments(src, file, c, opts, notes);

  const seen = new Map<string, ResolvedExperiment>();
  const experiments: ResolvedExperiment[] = [];
  for (const e of list) {
    const twin = seen.get(e.id);
    if (twin) {
      notes.push(`'${e.name}' resolves to the same config as '${twin.name}' (id ${e.id}); it is run once`);
      continue;
    }
    seen.set(e.id, e);
    experiments.push(e);
  }
  if (experiments.length === 0) {
    throw new ConfigError(src.locate(c.vary ? ['vary'] : []), null, `the campaign expands to no valid experiment. ${notes.join('; ')}.`);
  }
  const { campaign_name, configs: _c, base_config: _b, vary: _v, max_runs: _m, calibration_file, ...rest } = c;
  const structure = rest.structure ?? defaultStructure(rest.force_cold_start);
  const settings: CampaignSettings = { ...rest, structure, ...idleReference(src, file, calibration_file, rest.thermal_gap) };
  return { file, name: campaign_name, settings, experiments, notes };
}

/** The campaign's experiments, from `configs:` or `base_config` × `vary` (every problem of them in one ConfigError). */
function expandExperiments(src: SourceDoc, file: string, c: CampaignFile, opts: LoadOptions, notes: string[]): ResolvedExperiment[] {
  const list: ResolvedExperiment[] = [];
  const maxRuns = opts.maxRuns ?? c.max_runs ?? DEFAULT_MAX_RUNS;
  if (c.configs) {
    if (c.configs.length * c.cycles > maxRuns) throw tooManyRuns(src, ['configs'], 'the campaign lists', c.configs.length, c.cycles, maxRuns);
    const loaded = loadConfigRefs(src, file, c.configs);
    if (loaded.errors.length > 0) throw ConfigError.merge(loaded.errors);
    list.push(...loaded.list);
  } else if (c.base_config !== undefined) {
    let baseSrc = src;
    let basePrefix: PathKey[] = ['base_config'];
    let base: Record<string, unknown>;
    if (typeof c.base_config === 'string') {
      const path = resolveFrom(file, c.base_config);
      mustExist(src, ['base_config'], path);
      baseSrc = readSource(path);
      basePrefix = [];
      base = mustBeMapping(baseSrc, baseSrc.data, [], 'a base config');
    } else {
      base = c.base_config;
    }
    // Every wrong value and base field is reported once, however many combinations it breaks.
    const failures: ConfigError[] = [];
    const reported = new Set<string>();
    const fail = (f: GridFailure): void => {
      // Keyed before the (costlier) located error is built: a base problem recurs in every combination.
      const key = JSON.stringify([f.key, f.valueIndex, f.error.issues.map((i) => [i.path, i.code, i.message])]);
      if (reported.has(key)) return;
      reported.add(key);
      const at: PathKey[] | null = f.key === null ? null : f.valueIndex === null ? ['vary', f.key] : ['vary', f.key, f.valueIndex];
      failures.push(at ? schemaError(src, f.error, [], at) : schemaError(baseSrc, f.error, basePrefix));
    };
    // BENCHMARK_BACKEND fills the base's backend when neither the base nor vary names one.
    if (!c.vary?.['backend']) {
      const filled = applyBackendEnv(base);
      base = filled.data;
      if (filled.note) notes.push(filled.note);
    } else if (c.vary['backend'].includes('vllm')) {
      // VLLM_ENDPOINT fills the vllm combos' endpoint (the base's vllm section reaches only those).
      const filled = applyBackendEnv({ ...base, backend: 'vllm' });
      const { backend: _b, ...rest } = filled.data;
      base = rest;
      if (filled.note) notes.push(filled.note);
    }
    const combos = countGrid(base, c.vary ?? {});
    if (combos * c.cycles > maxRuns) throw tooManyRuns(src, ['vary'], 'the grid expands to up to', combos, c.cycles, maxRuns);
    const progress = opts.onProgress;
    const grid = expandGrid(base, c.vary ?? {}, fail, progress ? (built) => progress(built, combos) : undefined);
    if (failures.length > 0) throw ConfigError.merge(failures);
    notes.push(...grid.notes);
    const modelVaried = c.vary?.['model.id'] !== undefined;
    for (const combo of grid.combos) {
      if (modelVaried) checkModelPath(src, combo.config, ['vary', 'model.id']);
      else checkModelPath(baseSrc, combo.config, [...basePrefix, 'model', 'id']);
      const { backend: _backend, ...assigned } = combo.assignment;
      // In a label, a key of the backend's own section reads without its prefix: `pytorch batch_size=8`.
      const varied = Object.fromEntries(Object.entries(assigned).map(([k, v]) => [k.replace(`${combo.config.backend}.`, ''), v]));
      const label = Object.keys(varied).length > 0 ? `${combo.config.backend} ${formatAssignment(varied)}` : combo.config.backend;
      list.push(resolved(combo.config, label));
    }
  }
  return list;
}

/**
 * The campaign with the top-level fields its schema refused left out (a missing campaign_name
 * filled in), parsed again, so its experiments can still be checked; null when the experiments'
 * own fields (configs, base_config, vary) or the file's shape are what failed.
 */
function withoutBrokenFields(raw: Record<string, unknown>, error: z.ZodError): CampaignFile | null {
  const rest: Record<string, unknown> = { ...raw };
  for (const issue of error.issues) {
    const top = issue.path[0];
    if (top === undefined) {
      if (issue.code !== 'unrecognized_keys') return null;
      for (const k of issue.keys) delete rest[k];
      continue;
    }
    if (top === 'configs' || top === 'base_config' || top === 'vary') return null;
    delete rest[String(top)];
  }
  if (!('campaign_name' in rest)) rest['campaign_name'] = 'campaign';
  const again = CampaignFile.safeParse(rest);
  return again.success ? again.data : null;
}

/** The idle reference of `calibration_file:`, required when a thermal gap is relative to idle. */
function idleReference(src: SourceDoc, file: string, ref: string | undefined, gap: CampaignSettings['thermal_gap']): Pick<CampaignSettings, 'idle'> {
  const relative = typeof gap !== 'number' && (gap.within_c_of_idle !== undefined || gap.power_within_w_of_idle !== undefined);
  if (ref === undefined) {
    if (relative) throw new ConfigError(src.locate(['thermal_gap']), 'thermal_gap', 'within_c_of_idle and power_within_w_of_idle need the idle reference: run `lem calibrate --out calibration.json` and add `calibration_file: calibration.json` to the campaign.');
    return {};
  }
  const path = resolveFrom(file, ref);
  mustExist(src, ['calibration_file'], path);
  const cal = readCalibrationFile(path);
  return { idle: { idle_temp_c: cal.idle_temp_c.value, idle_power_w: cal.idle_power_w.value, file: path } };
}
