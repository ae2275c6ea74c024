/**
 * Pushing a campaign's results to an external store, idempotently. The store is behind `ResultSink`
 * (the ClickHouse one is clickhouse.ts), so the use case is testable and the CLI only wires it.
 *
 * Idempotency: each row carries a content hash. Before inserting, the sink is asked which
 * (key, row_hash) pairs it already holds; only rows that are new or changed are inserted. Pushing the
 * same campaign twice therefore inserts nothing the second time; a run that changed (e.g. re-run by
 * `campaign resume`) is inserted again, and the store keeps the newest version per key.
 */
import { aggregateRows, runRows, type AggregateRow, type CampaignForPush, type RunRow } from './rows.js';

export interface ResultSink {
  /** Creates the tables when missing. */
  ensureTables(): Promise<void>;
  /** row_hash by run_id for the campaign's runs already stored. */
  storedRunHashes(campaignId: string): Promise<Map<string, Set<string>>>;
  /** row_hash by `experiment_id/metric` for the campaign's aggregates already stored. */
  storedAggregateHashes(campaignId: string): Promise<Map<string, Set<string>>>;
  insertRuns(rows: readonly RunRow[]): Promise<void>;
  insertAggregates(rows: readonly AggregateRow[]): Promise<void>;
  close(): Promise<void>;
}

export interface PushOutcome {
  runs: { total: number; inserted: number; unchanged: number };
  aggregates: { total: number; inserted: number; unchanged: number };
}

function fresh<T extends { row_hash: string }>(rows: readonly T[], key: (r: T) => string, stored: Map<string, Set<string>>): T[] {
  return rows.filter((r) => !stored.get(key(r))?.has(r.row_hash));
}

export async function pushCampaign(c: CampaignForPush, sink: ResultSink): Promise<PushOutcome> {
  await sink.ensureTables();
  const runs = runRows(c);
  const aggs = aggregateRows(c);
  const newRuns = fresh(runs, (r) => r.run_id, await sink.storedRunHashes(c.campaignId));
  const newAggs = fresh(aggs, (r) => `${r.experiment_id}/${r.metric}`, await sink.storedAggregateHashes(c.campaignId));
  if (newRuns.length > 0) await sink.insertRuns(newRuns);
  if (newAggs.length > 0) await sink.insertAggregates(newAggs);
  return {
    runs: { total: runs.length, inserted: newRuns.length, unchanged: runs.length - newRuns.length },
    aggregates: { total: aggs.length, inserted: newAggs.length, unchanged: aggs.length - newAggs.length },
  };
}
