/** `lem config validate` and `lem config generate-grid`. */
import { loadCampaign, loadExperimentFile } from '../../config/load.js';
import { readSource } from '../../config/source.js';
import { EXIT_OK } from '../../util/errors.js';
import { printJson, type CliContext } from '../context.js';
import { table } from '../format.js';

/** Validates an experiment config or a campaign file (a campaign is recognised by campaign_name). */
export function configValidate(ctx: CliContext, file: string, opts: { json?: boolean }): number {
  const src = readSource(file);
  const isCampaign = src.data !== null && typeof src.data === 'object' && 'campaign_name' in src.data;
  if (isCampaign) {
    const c = loadCampaign(file);
    if (opts.json) printJson(ctx, { valid: true, kind: 'campaign', name: c.name, experiments: c.experiments.length, notes: c.notes });
    else {
      ctx.out(`${file}: valid campaign '${c.name}' — ${c.experiments.length} experiment(s) × ${c.settings.cycles} cycle(s).`);
      for (const n of c.notes) ctx.out(`  note: ${n}`);
    }
  } else {
    const cfg = loadExperimentFile(file);
    if (opts.json) printJson(ctx, { valid: true, kind: 'experiment', backend: cfg.backend, config: cfg });
    else ctx.out(`${file}: valid ${cfg.backend} experiment config.`);
  }
  return EXIT_OK;
}

export function configGenerateGrid(ctx: CliContext, file: string, opts: { json?: boolean }): number {
  const c = loadCampaign(file);
  if (opts.json) {
    printJson(ctx, { campaign: c.name, settings: c.settings, experiments: c.experiments, notes: c.notes });
    return EXIT_OK;
  }
  ctx.out(table(['#', 'id', 'backend', 'name'], c.experiments.map((e, i) => [String(i + 1), e.id, e.backend, e.name]), [0]));
  ctx.out(`\n${c.experiments.length} experiment(s) × ${c.settings.cycles} cycle(s) = ${c.experiments.length * c.settings.cycles} run(s).`);
  for (const n of c.notes) ctx.out(`note: ${n}`);
  return EXIT_OK;
}
