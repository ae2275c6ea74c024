/**
 * The `lem` command line. Command modules load on demand, so a quick read (status) stays quick.
 * Every command returns an exit code; expected failures (bad input,
 * failed runs) are LemErrors printed as one paragraph, never a stack trace.
 */
import { resolve } from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { EXIT_USAGE, LemError } from '../util/errors.js';
import { makeContext, type GlobalOptions } from './context.js';
import type { RuntimeName } from '../config/campaign.js';
import { explain, reportCrash } from './crash.js';

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
  const runtimeOpt = () => new Option('--runtime <name>', 'override the campaign runtime').choices(['local', 'docker', 'slurm']);
  campaign
    .command('run <file>')
    .description('expand, plan and run a campaign file')
    .addOption(runtimeOpt())
    .option('--keep-services', 'leave backend containers running at the end')
    .option('--dry-run', 'print the planned run order and exit')
    .option('--max-runs <n>', 'refuse to plan more runs than this (overrides max_runs:, default 100000)')
    .option('--json', 'print the outcome and summary as JSON on stdout')
    .action((file: string, o: { runtime?: RuntimeName; keepServices?: boolean; dryRun?: boolean; json?: boolean; maxRuns?: string }) =>
      later(async () => (await import('./commands/campaign.js')).campaignRun(ctx(), file, o)),
    );
  campaign
    .command('resume <id>')
    .description('run what did not succeed in an earlier campaign (id or unique prefix)')
    .addOption(runtimeOpt())
    .option('--keep-services', 'leave backend containers running at the end')
    .option('--json', 'print the outcome and summary as JSON on stdout')
    .action((id: string, o: { runtime?: RuntimeName; keepServices?: boolean; json?: boolean }) => later(async () => (await import('./commands/campaign.js')).campaignResume(ctx(), id, o)));
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
    .description('validate an experiment config or a campaign file; lists every problem found')
    .option('--max-runs <n>', 'the run limit to check a campaign against (overrides max_runs:)')
    .option('--json', 'machine-readable output: {valid, errors[]} (also for an invalid file)')
    .action((file: string, o: { json?: boolean; maxRuns?: string }) => later(async () => (await import('./commands/config.js')).configValidate(ctx(), file, o)));
  config
    .command('import <files...>')
    .description('convert LLenergyMeasure v1/v2, optimum-benchmark (Hydra) and ai_energy_benchmarks configs into a lem campaign YAML')
    .option('-o, --out <file>', 'write the campaign here (default: stdout)')
    .option('--check', "validate the result with lem's loader and print how many experiments it expands to")
    .action((files: string[], o: { out?: string; check?: boolean }) => later(async () => (await import('./commands/config-import.js')).configImport(ctx(), files, o)));
  config
    .command('params <backend>')
    .description('the typed engine parameters of a backend (pytorch, vllm, tensorrt): type, default, grid axis')
    .option('--coverage', 'which engine parameters are typed, set by lem or left to extra.engine_args, and the energy-relevant coverage')
    .option('--json', 'machine-readable output')
    .action((backend: string, o: { json?: boolean; coverage?: boolean }) => later(async () => (await import('./commands/config-params.js')).configParams(ctx(), backend, o)));
  config
    .command('generate-grid <campaign>')
    .description('print the experiments a campaign expands to')
    .option('--max-runs <n>', 'the run limit to check the campaign against (overrides max_runs:)')
    .option('--json', 'machine-readable output')
    .action((file: string, o: { json?: boolean; maxRuns?: string }) => later(async () => (await import('./commands/config.js')).configGenerateGrid(ctx(), file, o)));

  const statOptions = (c: Command): Command =>
    c
      .option('--exclude-flagged', 'leave out runs whose validation gates fired (the count is reported)')
      .addOption(new Option('--method <method>', 'also show this bootstrap interval at every n (the headline stays the t interval; by default BCa is shown from 30 cycles on)').choices(['bca', 'percentile']))
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
  results
    .command('import <paths...>')
    .description('import results other tools measured (optimum-benchmark reports, AI Energy Score files, ai_energy_benchmarks CSVs, LLenergyMeasure v1/v2 results; files, directories or globs) as a campaign')
    .option('--name <name>', 'campaign name (default import-<tool>)')
    .option('--json', 'machine-readable output')
    .action((paths: string[], o: { name?: string; json?: boolean }) => later(async () => (await import('./commands/results-import.js')).resultsImport(ctx(), paths, o)));
  carbonOptions(statOptions(results.command('export <campaign>').description('write results for other tools')))
    .addOption(new Option('--format <format>', 'output format').choices(['csv', 'json', 'unified', 'ai-energy-score', 'optimum-benchmark', 'codecarbon']).default('csv'))
    .addOption(new Option('--by <level>', 'csv/json rows: one per run, per experiment or per cycle').choices(['run', 'experiment', 'cycle']).default('run'))
    .option('--out <path>', 'file (csv/json/unified/codecarbon; default stdout) or directory (ai-energy-score, optimum-benchmark)')
    .action((id: string, o: StatCli & { format: ExportFormat; by: 'run' | 'experiment' | 'cycle' }) => later(async () => (await import('./commands/results.js')).resultsExport(ctx(), id, o)));
  toleranceOptions(statOptions(
    results
      .command('compare <a> <b>')
      .description('B against A per metric, with a Welch t / Fieller 95 % CI and a tolerance verdict; a side is CAMPAIGN (an imported one too), CAMPAIGN/EXPERIMENT, or files `results import` reads (file, directory, glob)'),
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

  const daemon = program.command('daemon').description("run a campaign's cycles at the times of its schedule (one daemon per campaign)");
  daemon
    .command('run <file>')
    .description('run the schedule in the foreground (systemd, a container, a terminal); human lines on stderr, JSON lines in <state>/daemon/')
    .addOption(runtimeOpt())
    .option('--new', 'plan a new campaign even if an earlier daemon of this file left one unfinished')
    .action((file: string, o: { runtime?: RuntimeName; new?: boolean }) => later(async () => (await import('./commands/daemon.js')).daemonRun(ctx(), file, o)));
  daemon
    .command('start <file>')
    .description('the same daemon, detached; returns once it runs')
    .addOption(runtimeOpt())
    .option('--new', 'plan a new campaign even if an earlier daemon of this file left one unfinished')
    .action((file: string, o: { runtime?: RuntimeName; new?: boolean }) => later(async () => (await import('./commands/daemon.js')).daemonStart(ctx(), file, o)));
  daemon
    .command('stop [campaign]')
    .description('stop the daemon of a campaign (default: the one running)')
    .action((id: string | undefined) => later(async () => (await import('./commands/daemon.js')).daemonStop(ctx(), id)));
  daemon
    .command('status [campaign]')
    .description('next fire, fires done and left, the run in progress, the last error')
    .option('--json', 'machine-readable output')
    .action((id: string | undefined, o: { json?: boolean }) => later(async () => (await import('./commands/daemon.js')).daemonStatusCommand(ctx(), id, o)));

  program
    .command('calibrate')
    .description('measure idle temperature/power, the energy counter update period and the time back to idle after a burn; recommend thermal_gap and min_window_s')
    .addOption(new Option('--runtime <name>', 'where the worker runs (slurm: a step of a short allocation with the default slurm settings)').choices(['local', 'docker', 'slurm']).default('local'))
    .option('--gpus <list>', 'comma-separated GPU indices (default: all visible)')
    .option('--out <file>', 'calibration file to write (a campaign references it as calibration_file:)', 'calibration.json')
    .option('--burn-s <s>', 'seconds of calibration burn', '60')
    .option('--idle-s <s>', 'seconds of idle sampling before the burn', '10')
    .option('--settle-max-s <s>', 'stop waiting for idle after this long', '600')
    .option('--json', 'machine-readable output')
    .action((o: import('./commands/calibrate.js').CalibrateCli) => later(async () => (await import('./commands/calibrate.js')).calibrateCommand(ctx(), o)));

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
    .option('--campaign <file>', "also check every host of this campaign file's hosts: through its own engine")
    .action((backends: string[], o: { json?: boolean; campaign?: string }) =>
      later(async () => (await import('./commands/doctor.js')).doctor({ json: o.json ?? false, ...(backends.length ? { backends } : {}), ...(o.campaign !== undefined ? { campaign: o.campaign } : {}) })),
    );

  const state = program.command('state').description('check and back up the state directory (manifest and run files)');
  state
    .command('check')
    .description('integrity of the manifest, and whether every recorded result file is there and unchanged')
    .option('--json', 'machine-readable output')
    .action((o: { json?: boolean }) => later(async () => (await import('./commands/state.js')).stateCheck(ctx(), o)));
  state
    .command('backup')
    .description('a consistent copy of the manifest (SQLite online backup), safe while a campaign runs')
    .option('--out <path>', 'the backup file (default <state>/backups/lem-<time>.db)')
    .option('--json', 'machine-readable output')
    .action((o: { out?: string; json?: boolean }) => later(async () => (await import('./commands/state.js')).stateBackup(ctx(), o)));

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
    let where = { stateDir: resolve('state'), dbPath: resolve('state', 'lem.db') };
    try {
      const c = ctx();
      where = { stateDir: c.stateDir, dbPath: c.dbPath };
    } catch {
      // options unreadable: the defaults above
    }
    const known: LemError | null = explain(e, where);
    if (known) {
      process.stderr.write(`lem: ${known.message}\n`);
      return known.exitCode;
    }
    return reportCrash(e, where.stateDir, argv.slice(2), (line) => process.stderr.write(`${line}\n`));
  }
}
