/** `lem config validate` and `lem config generate-grid`. */
import { loadCampaign, loadExperimentFile, type LoadOptions } from '../../config/load.js';
import { experimentTopLevelFields } from '../../config/vocabulary.js';
import { readSource } from '../../config/source.js';
import { ConfigError, EXIT_OK, EXIT_USAGE, formatProblem, LemError } from '../../util/errors.js';
import { printJson, type CliContext } from '../context.js';
import { verbatim } from '../json.js';
import { table } from '../format.js';

export interface GridCliOptions {
  json?: boolean;
  maxRuns?: string;
}

/** Fields only a campaign has: a file with any of them (or none of an experiment's) is a campaign. */
const CAMPAIGN_ONLY = ['campaign_name', 'configs', 'base_config', 'vary', 'cycles', 'structure', 'seed', 'thermal_gap', 'runtime', 'force_cold_start', 'retries', 'keep_services', 'max_runs'];

function looksLikeCampaign(data: unknown): boolean {
  if (data === null || typeof data !== 'object' || Array.isArray(data)) return false;
  const keys = Object.keys(data);
  if (keys.some((k) => CAMPAIGN_ONLY.includes(k))) return true;
  // An experiment config names its backend, or leaves it to BENCHMARK_BACKEND but has experiment
  // fields; anything else (a misspelt campaign_name) is read as a campaign, to name the typo.
  const experiment = experimentTopLevelFields();
  return !keys.some((k) => experiment.has(k));
}

export function parseMaxRuns(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1) throw new LemError(`--max-runs expects a whole number of at least 1, got '${v}'.`);
  return n;
}

/** Load options for the CLI: --max-runs, and progress on stderr while a big grid expands. */
export function loadOptions(ctx: CliContext, maxRuns: string | undefined): LoadOptions {
  let last = Date.now();
  const opts: LoadOptions = {
    onProgress: (built, total) => {
      const now = Date.now();
      if (now - last < 2000) return;
      last = now;
      ctx.err(`expanding the grid: ${built.toLocaleString('en-US')} of ${total.toLocaleString('en-US')} combinations checked…`);
    },
  };
  const n = parseMaxRuns(maxRuns);
  if (n !== undefined) opts.maxRuns = n;
  return opts;
}

/**
 * Validates an experiment config or a campaign file. Lists every problem found (file:line:col,
 * field, message); --json prints {valid, errors[]} for an invalid file too.
 */
export function configValidate(ctx: CliContext, file: string, opts: GridCliOptions): number {
  parseMaxRuns(opts.maxRuns);
  try {
    const src = readSource(file);
    if (looksLikeCampaign(src.data)) {
      const c = loadCampaign(file, loadOptions(ctx, opts.maxRuns));
      if (opts.json) printJson(ctx, 'config.validate', { valid: true, errors: [], kind: 'campaign', name: c.name, experiments: c.experiments.length, runs: c.experiments.length * c.settings.cycles, notes: c.notes });
      else {
        ctx.out(`${file}: valid campaign '${c.name}' — ${c.experiments.length} experiment(s) × ${c.settings.cycles} cycle(s).`);
        for (const n of c.notes) ctx.out(`  note: ${n}`);
      }
    } else {
      const cfg = loadExperimentFile(file);
      if (opts.json) printJson(ctx, 'config.validate', { valid: true, errors: [], kind: 'experiment', backend: cfg.backend, config: verbatim(cfg) });
      else ctx.out(`${file}: valid ${cfg.backend} experiment config.`);
    }
    return EXIT_OK;
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    if (opts.json) {
      printJson(ctx, 'config.validate', { valid: false, errors: e.problems.map((p) => ({ file: p.file, line: p.line, column: p.column, field: p.field, message: p.message })) });
    } else {
      for (const p of e.problems) ctx.err(`lem: ${formatProblem(p)}`);
      if (e.problems.length > 1) ctx.err(`lem: ${e.problems.length} problems in ${file}.`);
    }
    return EXIT_USAGE;
  }
}

export function configGenerateGrid(ctx: CliContext, file: string, opts: GridCliOptions): number {
  const c = loadCampaign(file, loadOptions(ctx, opts.maxRuns));
  if (opts.json) {
    printJson(ctx, 'config.generate_grid', { campaign: c.name, settings: verbatim(c.settings), experiments: verbatim(c.experiments), notes: c.notes });
    return EXIT_OK;
  }
  ctx.out(table(['#', 'id', 'backend', 'name'], c.experiments.map((e, i) => [String(i + 1), e.id, e.backend, e.name]), [0]));
  ctx.out(`\n${c.experiments.length} experiment(s) × ${c.settings.cycles} cycle(s) = ${c.experiments.length * c.settings.cycles} run(s).`);
  for (const n of c.notes) ctx.out(`note: ${n}`);
  return EXIT_OK;
}
