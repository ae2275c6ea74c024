/**
 * The `lem` command line. Command modules load on demand, so a quick read (status) stays quick.
 * Every command returns an exit code; expected failures (bad input,
 * failed runs) are LemErrors printed as one paragraph, never a stack trace.
 */
import { Command, CommanderError, Option } from 'commander';
import { EXIT_USAGE, LemError } from '../util/errors.js';
import { makeContext, type GlobalOptions } from './context.js';

type Action = () => number | Promise<number>;
type ExportFormat = 'csv' | 'json' | 'unified' | 'ai-energy-score' | 'optimum-benchmark' | 'codecarbon';
/** Options shared by the results commands, as commander parses them. */
/** The tolerance flags of validate and results compare (percent, as typed). */
interface ToleranceCli {
  energyTolerance?: string;
  throughputTolerance?: string;
  latencyTolerance?: string;
}
interface StatCli {
  carbonIntensity?: string;
  carbonRegion?: string;
  excludeFlagged?: boolean;
  method?: 'bca' | 'percentile';
  resamples?: string;
  json?: boolean;
  all?: boolean;
  out?: string;
  run?: string;
}

function collectBuildArg(value: string, acc: Record<string, string>): Record<string, string> {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new LemError(`--build-arg expects KEY=VALUE, got '${value}'.`);
  return { ...acc, [value.slice(0, eq)]: value.slice(eq + 1) };
}

export async function main(argv: readonly string[]): Promise<number> {
  let pending: Action | null = null;
  const program = new Command('lem')
    .description('Measure the true cost of LLM inference: energy, throughput and latency, across models, backends and parameter grids.')
    .version('0.1.0')
    .option('--state <dir>', 'state directory: manifest and run files (default: $LEM_STATE_DIR or ./state)')
    .option('--db <path>', 'manifest database (default: <state>/lem.db)')
    .exitOverride()
    .showHelpAfterError('(run with --help for usage)');
  const ctx = () => makeContext(program.opts<GlobalOptions>());
  const later = (fn: Action): void => {
    pending = fn;
  };

  const campaign = program.command('campaign').description('plan, run, resume and inspect campaigns');
  const runtimeOpt = () => new Option('--runtime <name>', 'override the campaign runtime').choices(['local', 'docker']);
  campaign
    .command('run <file>')
    .description('expand, plan and run a campaign file')
    .addOption(runtimeOpt())
    .option('--keep-services', 'leave backend containers running at the end')
    .option('--dry-run', 'print the planned run order and exit')
    .option('--json', 'print the outcome and summary as JSON on stdout')
    .action((file: string, o: { runtime?: 'local' | 'docker'; keepServices?: boolean; dryRun?: boolean; json?: boolean }) =>
      later(async () => (await import('./commands/campaign.js')).campaignRun(ctx(), file, o)),
    );
  campaign
    .command('resume <id>')
    .description('run what did not succeed in an earlier campaign (id or unique prefix)')
    .addOption(runtimeOpt())
    .option('--keep-services', 'leave backend containers running at the end')
    .option('--json', 'print the outcome and summary as JSON on stdout')
    .action((id: string, o: { runtime?: 'local' | 'docker'; keepServices?: boolean; json?: boolean }) => later(async () => (await import('./commands/campaign.js')).campaignResume(ctx(), id, o)));
  campaign
    .command('status [id]')
    .description('progress of a campaign (default: the latest)')
    .option('--experiments', 'per-experiment counts even for a very large campaign')
    .option('--json', 'machine-readable output')
    .action((id: string | undefined, o: { json?: boolean; experiments?: boolean }) => later(async () => (await import('./commands/campaign-status.js')).campaignStatus(ctx(), id, o)));
  campaign
    .command('list')
    .description('all campaigns in the manifest')
    .option('--json', 'machine-readable output')
    .action((o: { json?: boolean }) => later(async () => (await import('./commands/campaign-status.js')).campaignList(ctx(), o)));

  const config = program.command('config').description('check experiment configs and campaign files');
  config
    .command('validate <file>')
    .description('validate an experiment config or a campaign file')
    .option('--json', 'machine-readable output')
    .action((file: string, o: { json?: boolean }) => later(async () => (await import('./commands/config.js')).configValidate(ctx(), file, o)));
  config
    .command('generate-grid <campaign>')
    .description('print the experiments a campaign expands to')
    .option('--json', 'machine-readable output')
    .action((file: string, o: { json?: boolean }) => later(async () => (await import('./commands/config.js')).configGenerateGrid(ctx(), file, o)));

  const statOptions = (c: Command): Command =>
    c
      .option('--exclude-flagged', 'leave out runs whose validation gates fired (the count is reported)')
      .addOption(new Option('--method <method>', 'bootstrap interval method').choices(['bca', 'percentile']).default('bca'))
      .option('--resamples <n>', 'bootstrap resamples (default 10000)');
  const toleranceOptions = (c: Command): Command =>
    c
      .option('--energy-tolerance <pct>', 'tolerance for energy metrics, in percent (default 5)')
      .option('--throughput-tolerance <pct>', 'tolerance for throughput metrics, in percent (default 10)')
      .option('--latency-tolerance <pct>', 'tolerance for latency metrics, in percent (default 10)');
  const results = program.command('results').description('aggregate, export and compare results (computed late from the raw runs)');
  const carbonOptions = (c: Command): Command =>
    c
      .option('--carbon-intensity <g_per_kwh>', "grid carbon intensity for emissions, gCO2eq/kWh (overrides the campaign's carbon:)")
      .option('--carbon-region <code>', 'region of the shipped grid-intensity table (ISO 3166-1 alpha-3, e.g. FRA)');
  carbonOptions(statOptions(results.command('show <campaign>').description('per-experiment statistics across cycles')))
    .option('--all', 'every metric, not only the main ones')
    .option('--json', 'machine-readable output')
    .action((id: string, o: StatCli) => later(async () => (await import('./commands/results.js')).resultsShow(ctx(), id, o)));
  carbonOptions(statOptions(results.command('export <campaign>').description('write results for other tools')))
    .addOption(new Option('--format <format>', 'output format').choices(['csv', 'json', 'unified', 'ai-energy-score', 'optimum-benchmark', 'codecarbon']).default('csv'))
    .addOption(new Option('--by <level>', 'csv/json rows: one per run, per experiment or per cycle').choices(['run', 'experiment', 'cycle']).default('run'))
    .option('--out <path>', 'file (csv/json/unified/codecarbon; default stdout) or directory (ai-energy-score, optimum-benchmark)')
    .action((id: string, o: StatCli & { format: ExportFormat; by: 'run' | 'experiment' | 'cycle' }) => later(async () => (await import('./commands/results.js')).resultsExport(ctx(), id, o)));
  toleranceOptions(statOptions(
    results
      .command('compare <a> <b>')
      .description('B against A per metric, with a bootstrap CI and a tolerance verdict; a side is CAMPAIGN, CAMPAIGN/EXPERIMENT, or a benchmark_report.json / ai_energy_benchmarks .csv'),
  ))
    .option('--json', 'machine-readable output')
    .addOption(new Option('--fail-on <verdict>', 'exit 1 when any metric is outside its tolerance; with inconclusive, also exit 3 when any is inconclusive').choices(['outside', 'inconclusive']))
    .action((a: string, b: string, o: StatCli & ToleranceCli & { failOn?: 'outside' | 'inconclusive' }) => later(async () => (await import('./commands/results.js')).resultsCompare(ctx(), a, b, o)));
  results
    .command('push <campaign>')
    .description('write per-run rows and per-experiment aggregates to ClickHouse (idempotent; creates the tables when missing)')
    .requiredOption('--clickhouse <url>', 'ClickHouse HTTP URL, e.g. http://localhost:8123 (a path selects the database); credentials from CLICKHOUSE_USER / CLICKHOUSE_PASSWORD or --credentials-file')
    .option('--table <name>', 'runs table (aggregates go to <name>_experiments)', 'lem_runs')
    .option('--credentials-file <path>', 'file with CLICKHOUSE_USER=… and CLICKHOUSE_PASSWORD=… lines')
    .option('--json', 'machine-readable output')
    .action((id: string, o: { clickhouse: string; table?: string; credentialsFile?: string; json?: boolean }) => later(async () => (await import('./commands/push.js')).resultsPush(ctx(), id, o)));
  toleranceOptions(
    statOptions(
      program
        .command('validate <a> <b>')
        .description('B against A per metric (ratio B/A, its 95 % interval, a verdict); exit 0 all within tolerance, 1 any outside, 3 any inconclusive; a side is CAMPAIGN, CAMPAIGN/EXPERIMENT or a result file as for results compare'),
    ),
  )
    .option('--json', 'machine-readable output')
    .action((a: string, b: string, o: StatCli & ToleranceCli) => later(async () => (await import('./commands/validate.js')).validate(ctx(), a, b, o)));
  statOptions(program.command('report <campaign>').description('write a self-contained HTML report with plots'))
    .option('--out <file>', 'output file (default <state>/reports/<campaign>.html)')
    .option('--run <run>', 'run whose power timeline to plot (position or run id)')
    .action((id: string, o: StatCli) => later(async () => (await import('./commands/results.js')).report(ctx(), id, o)));

  const images = program.command('images').description('backend container images');
  images
    .command('build [backends...]')
    .description('build backend images through the Docker engine (default: all)')
    .option('--base-image <image>', 'override the BASE_IMAGE build argument (e.g. an offline base)')
    .option('--build-arg <KEY=VALUE>', 'set a build argument (repeatable)', collectBuildArg, {})
    .option('--no-cache', 'do not use the build cache')
    .option('--json', 'machine-readable output')
    .action((backends: string[], o: { baseImage?: string; buildArg: Record<string, string>; cache?: boolean; json?: boolean }) =>
      later(async () =>
        (await import('./commands/images.js')).imagesBuild({
          backends,
          json: o.json ?? false,
          noCache: o.cache === false,
          ...(o.baseImage ? { baseImage: o.baseImage } : {}),
          ...(Object.keys(o.buildArg).length > 0 ? { buildArgs: o.buildArg } : {}),
        }),
      ),
    );
  images
    .command('ls')
    .description('which backend images are present')
    .option('--json', 'machine-readable output')
    .action((o: { json?: boolean }) => later(async () => (await import('./commands/images.js')).imagesList({ json: o.json ?? false })));
  program
    .command('backends')
    .alias('list-backends')
    .description('list backends, what each needs, and whether it is ready here (local python packages, docker image, GPUs); and what BENCHMARK_BACKEND selects')
    .option('--json', 'machine-readable output')
    .action((o: { json?: boolean }) => later(async () => (await import('./commands/backends.js')).backends(ctx(), o)));
  program
    .command('doctor [backends...]')
    .description('check the Docker engine, images, GPUs and tokens, and say how to fix what is missing')
    .option('--json', 'machine-readable output')
    .action((backends: string[], o: { json?: boolean }) =>
      later(async () => (await import('./commands/doctor.js')).doctor({ json: o.json ?? false, ...(backends.length ? { backends } : {}) })),
    );

  try {
    await program.parseAsync(argv as string[]);
    const action: Action | null = pending;
    if (!action) {
      program.outputHelp();
      return EXIT_USAGE;
    }
    return await (action as Action)();
  } catch (e) {
    if (e instanceof CommanderError) {
      return e.exitCode === 0 ? 0 : EXIT_USAGE;
    }
    if (e instanceof LemError) {
      process.stderr.write(`lem: ${e.message}\n`);
      return e.exitCode;
    }
    // A file lem was told to read or write is not usable: the user's to fix, not a crash.
    const fsError = e as NodeJS.ErrnoException;
    if (typeof fsError.code === 'string' && typeof fsError.path === 'string') {
      process.stderr.write(`lem: cannot ${fsError.syscall ?? 'use'} ${fsError.path}: ${fsError.code} (${fsError.message.replace(/^[A-Z]+: /, '').split(',')[0]}).\n`);
      return EXIT_USAGE;
    }
    throw e;
  }
}
