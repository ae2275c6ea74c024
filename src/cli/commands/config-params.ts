/** `lem config params BACKEND [--coverage] [--json]`: the typed engine parameters, from the schemas. */
import { backendParams, catalogueCoverage, ENGINE_BACKENDS, type EngineBackend } from '../../config/params.js';
import { EXIT_OK, EXIT_USAGE } from '../../util/errors.js';
import { printJson, type CliContext } from '../context.js';
import { table } from '../format.js';

export interface ParamsOptions {
  json?: boolean;
  coverage?: boolean;
}

const pct = (v: number | null): string => (v === null ? '—' : `${(v * 100).toFixed(1)} %`);

export function configParams(ctx: CliContext, backend: string, opts: ParamsOptions): number {
  if (!(ENGINE_BACKENDS as readonly string[]).includes(backend)) {
    ctx.err(`lem config params: unknown backend '${backend}'; one of ${ENGINE_BACKENDS.join(', ')}.`);
    return EXIT_USAGE;
  }
  const b = backend as EngineBackend;
  if (opts.coverage) {
    const c = catalogueCoverage(b);
    if (opts.json) {
      printJson(ctx, 'config.params.coverage', { ...c, coverage: c.coverage });
      return EXIT_OK;
    }
    ctx.out(`${b}: engine parameters by how they reach the engine (catalogue: images/worker/lem_worker/data/engine_params.yaml)`);
    ctx.out(table(['engine parameter', 'lem field'], c.typed.map((t) => [t.engine, t.known ? t.field : `${t.field} (NOT IN SCHEMA)`])));
    ctx.out(`set by lem from the run: ${c.setByLem.join(', ')}`);
    ctx.out(`left to extra.engine_args: ${c.left.join(', ')}`);
    ctx.out(`energy-relevant parameters covered: ${c.covered} of ${c.energyRelevant} (${pct(c.coverage)})` +
      (c.notCovered.length ? `; not typed: ${c.notCovered.join(', ')}` : ''));
    ctx.out(`live audit of the engine in its image (introspects ${c.classes.join(', ')}):`);
    ctx.out(`  docker run --rm lem-${b} python3 -m lem_worker coverage ${b}`);
    return EXIT_OK;
  }
  const rows = backendParams(b);
  if (opts.json) {
    printJson(ctx, 'config.params', { backend: b, parameters: rows.map((r) => ({ ...r, grid_axis: r.field })) });
    return EXIT_OK;
  }
  const def = (r: (typeof rows)[number]): string => (r.default === null ? (r.section ? '(engine default)' : '—') : JSON.stringify(r.default));
  ctx.out(table(['field (= grid axis)', 'type', 'default', 'description'], rows.map((r) => [r.field, r.type, def(r), r.description])));
  ctx.out(`any field above is a vary: key in a campaign (e.g. vary: {${rows[0]?.field ?? b}: [...]}); engine arguments lem does not type go in extra.engine_args.`);
  return EXIT_OK;
}
