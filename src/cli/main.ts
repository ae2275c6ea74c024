/**
 * The `lem` command line. Command modules load on demand, so a quick read (status) stays quick.
 * Every command returns an exit code; expected failures (bad input,
 * failed runs) are LemErrors printed as one paragraph, never a stack trace.
 */
import { Command, CommanderError, Option } from 'commander';
import { EXIT_USAGE, LemError } from '../util/errors.js';
import { makeContext, type GlobalOptions } from './context.js';

type Action = () => number | Promise<number>;

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
    .option('--json', 'machine-readable output')
    .action((id: string | undefined, o: { json?: boolean }) => later(async () => (await import('./commands/campaign-status.js')).campaignStatus(ctx(), id, o)));
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
    throw e;
  }
}
