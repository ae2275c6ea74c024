/** `lem results push CAMPAIGN --clickhouse URL [--table NAME] [--credentials-file PATH]`. */
import { campaignRecords } from '../../results/records.js';
import { resolveIntensity, withEmissions } from '../../results/carbon.js';
import { ClickhouseSink, parseTarget, readCredentials } from '../../results/push/clickhouse.js';
import { pushCampaign } from '../../results/push/sink.js';
import { EXIT_OK } from '../../util/errors.js';
import { printJson, type CliContext } from '../context.js';

export async function resultsPush(ctx: CliContext, id: string, o: { clickhouse: string; table?: string; credentialsFile?: string; json?: boolean }): Promise<number> {
  const target = parseTarget(o.clickhouse, o.table);
  const creds = readCredentials(process.env, o.credentialsFile);
  const m = ctx.openManifest();
  let rec;
  try {
    rec = campaignRecords(m, id);
  } finally {
    m.close();
  }
  const runs = withEmissions(rec.runs, resolveIntensity(rec.carbon));
  const sink = new ClickhouseSink(target, creds);
  try {
    const outcome = await pushCampaign({ ...rec, runs }, sink);
    const where = { url: target.url, database: target.database, runs_table: target.table, experiments_table: `${target.table}_experiments` };
    if (o.json) printJson(ctx, 'push', { campaign: rec.campaignId, ...where, ...outcome });
    else {
      ctx.out(`campaign ${rec.campaignId} → ${target.url} ${target.database}.${target.table} (+ ${target.table}_experiments)`);
      ctx.out(`runs: ${outcome.runs.inserted} inserted, ${outcome.runs.unchanged} already there (${outcome.runs.total} finished)`);
      ctx.out(`experiment aggregates: ${outcome.aggregates.inserted} inserted, ${outcome.aggregates.unchanged} already there`);
    }
    return EXIT_OK;
  } finally {
    await sink.close();
  }
}
