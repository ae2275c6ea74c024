/**
 * The push use case's idempotency with a fake in-memory sink (the real ClickHouse sink is tested in
 * test/e2e/clickhouse-push.test.ts): unchanged rows are not re-inserted, a changed run is.
 */
import { describe, expect, it } from 'vitest';
import { sqlString } from '../../src/results/push/clickhouse.js';
import { runRows, type AggregateRow, type RunRow } from '../../src/results/push/rows.js';
import { pushCampaign, type ResultSink } from '../../src/results/push/sink.js';
import { experiment, run } from './helpers.js';

class FakeMemorySink implements ResultSink {
  runs: RunRow[] = [];
  aggs: AggregateRow[] = [];
  async ensureTables(): Promise<void> {}
  private index<T extends { row_hash: string }>(rows: T[], key: (r: T) => string): Map<string, Set<string>> {
    const m = new Map<string, Set<string>>();
    for (const r of rows) m.set(key(r), (m.get(key(r)) ?? new Set()).add(r.row_hash));
    return m;
  }
  async storedRunHashes(): Promise<Map<string, Set<string>>> {
    return this.index(this.runs, (r) => r.run_id);
  }
  async storedAggregateHashes(): Promise<Map<string, Set<string>>> {
    return this.index(this.aggs, (r) => `${r.experiment_id}/${r.metric}`);
  }
  async insertRuns(rows: readonly RunRow[]): Promise<void> {
    this.runs.push(...rows);
  }
  async insertAggregates(rows: readonly AggregateRow[]): Promise<void> {
    this.aggs.push(...rows);
  }
  async close(): Promise<void> {}
}

const campaign = (energy: number) => ({
  campaignId: 'c1',
  name: 'c',
  seed: 1,
  experiments: [experiment('e1', 'one', 'calibration')],
  runs: [run('c1:0', 'e1', 1, { energy_total_j: 10, output_tokens_per_s: null }), run('c1:1', 'e1', 2, { energy_total_j: energy }), run('c1:2', 'e1', 3, {}, { status: 'pending' })],
});

describe('pushCampaign (fake sink)', () => {
  it('inserts finished runs once; a changed run is inserted again, unchanged ones are not', async () => {
    const sink = new FakeMemorySink();
    const first = await pushCampaign(campaign(20), sink);
    expect(first.runs).toEqual({ total: 2, inserted: 2, unchanged: 0 });
    expect(sink.aggs.map((a) => a.metric)).toEqual(['energy_total_j']);
    expect((await pushCampaign(campaign(20), sink)).runs.inserted).toBe(0);
    const changed = await pushCampaign(campaign(25), sink);
    expect(changed.runs).toEqual({ total: 2, inserted: 1, unchanged: 1 });
    expect(changed.aggregates.inserted).toBe(1);
    expect(sink.runs.map((r) => r.run_id)).toEqual(['c1:0', 'c1:1', 'c1:1']);
  });

  it('rows keep measured metrics as arrays and list unmeasured ones', () => {
    const [row] = runRows(campaign(20));
    expect(row).toMatchObject({ metric_names: ['energy_total_j'], metric_values: [10], unmeasured: ['output_tokens_per_s'], energy_total_j: 10, emissions_g: null, experiment_name: 'one' });
  });

  it('quotes ClickHouse string literals', () => {
    expect(sqlString("a'b\\c")).toBe("'a\\'b\\\\c'");
  });
});
