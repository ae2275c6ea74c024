/**
 * The ClickHouse results sink (official @clickhouse/client over HTTP; checked against ClickHouse 18.16).
 *
 * Tables (created when missing; NAME defaults to lem_runs):
 *   NAME              one row per run version: ReplacingMergeTree(version) ORDER BY run_id
 *   NAME_experiments  one row per experiment × metric: ReplacingMergeTree(version)
 *                     ORDER BY (campaign_id, experiment_id, metric)
 * Duplicates are never inserted (see sink.ts); a changed run adds a newer version that
 * ReplacingMergeTree keeps on merge: query with FINAL (or argMax(…, version)) for the latest.
 * Credentials: CLICKHOUSE_USER / CLICKHOUSE_PASSWORD from the environment, or a credentials file of
 * KEY=VALUE lines with those keys; never from the URL (refused), never printed, never stored.
 */
import { readFileSync } from 'node:fs';
import { createClient, type ClickHouseClient } from '@clickhouse/client';
import { LemError } from '../../util/errors.js';
import type { AggregateRow, RunRow } from './rows.js';
import { HEADLINE_METRICS } from './rows.js';
import type { ResultSink } from './sink.js';

export interface ClickhouseTarget {
  url: string;
  table: string;
  database: string;
}

export interface Credentials {
  username: string;
  password: string;
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/** Validates the URL and table; the database is the URL's path (default `default`). */
export function parseTarget(rawUrl: string, table = 'lem_runs'): ClickhouseTarget {
  let u: URL;
  try {
    u = new URL(rawUrl);
  } catch {
    throw new LemError(`--clickhouse must be a URL such as http://localhost:8123, got '${rawUrl}'.`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new LemError(`--clickhouse must be an http:// or https:// URL (ClickHouse's HTTP interface), got ${u.protocol}//.`);
  if (u.username || u.password) {
    throw new LemError('--clickhouse must not carry credentials: put them in CLICKHOUSE_USER / CLICKHOUSE_PASSWORD or in a --credentials-file, so they stay out of shell history and process lists.');
  }
  if (!IDENT.test(table)) throw new LemError(`--table must be a plain identifier (letters, digits, underscore), got '${table}'.`);
  const db = decodeURIComponent(u.pathname.replace(/^\/+|\/+$/g, '')) || 'default';
  if (!IDENT.test(db)) throw new LemError(`the database in the URL path must be a plain identifier, got '${db}'.`);
  return { url: `${u.protocol}//${u.host}`, table, database: db };
}

/** Credentials from a KEY=VALUE file (CLICKHOUSE_USER, CLICKHOUSE_PASSWORD), else the environment. */
export function readCredentials(env: NodeJS.ProcessEnv, file?: string): Credentials {
  if (file !== undefined) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new LemError(`cannot read the credentials file ${file}: ${(e as NodeJS.ErrnoException).code ?? 'error'}.`);
    }
    const kv = new Map<string, string>();
    text.split(/\r?\n/).forEach((line) => {
      const t = line.trim();
      if (t === '' || t.startsWith('#')) return;
      const eq = t.indexOf('=');
      if (eq > 0) kv.set(t.slice(0, eq).trim(), t.slice(eq + 1).trim());
    });
    const user = kv.get('CLICKHOUSE_USER');
    if (!user) throw new LemError(`the credentials file ${file} has no CLICKHOUSE_USER=… line (it may also hold CLICKHOUSE_PASSWORD=…).`);
    return { username: user, password: kv.get('CLICKHOUSE_PASSWORD') ?? '' };
  }
  return { username: env['CLICKHOUSE_USER'] || 'default', password: env['CLICKHOUSE_PASSWORD'] ?? '' };
}

/** A ClickHouse string literal. */
export function sqlString(s: string): string {
  return `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** An error message from the server or the network, with the password (if it ever appears) removed. */
function clean(e: unknown, secret: string): string {
  const msg = e instanceof Error ? e.message : String(e);
  const firstLine = msg.split('\n')[0] ?? msg;
  return secret ? firstLine.split(secret).join('***') : firstLine;
}

export class ClickhouseSink implements ResultSink {
  private readonly client: ClickHouseClient;
  private readonly runs: string;
  private readonly aggs: string;

  constructor(
    private readonly target: ClickhouseTarget,
    private readonly creds: Credentials,
  ) {
    this.client = createClient({ url: target.url, username: creds.username, password: creds.password, database: target.database, request_timeout: 30_000 });
    this.runs = `${target.database}.${target.table}`;
    this.aggs = `${target.database}.${target.table}_experiments`;
  }

  private async run<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      throw new LemError(`ClickHouse at ${this.target.url} (${what}): ${clean(e, this.creds.password)}`, 1);
    }
  }

  async ensureTables(): Promise<void> {
    const headline = HEADLINE_METRICS.map((m) => `${m} Nullable(Float64)`).join(', ');
    await this.run('create table', () =>
      this.client.command({
        query: `CREATE TABLE IF NOT EXISTS ${this.runs} (run_id String, campaign_id String, campaign_name String, experiment_id String, experiment_name String, backend String, cycle UInt32, status String, flags Array(String), metric_names Array(String), metric_values Array(Float64), unmeasured Array(String), ${headline}, row_hash String, pushed_at DateTime, version UInt64) ENGINE = ReplacingMergeTree(version) ORDER BY run_id`,
      }),
    );
    await this.run('create table', () =>
      this.client.command({
        query: `CREATE TABLE IF NOT EXISTS ${this.aggs} (campaign_id String, experiment_id String, experiment_name String, backend String, metric String, runs_used UInt32, n UInt32, mean Float64, median Float64, std Nullable(Float64), cv Nullable(Float64), min Float64, max Float64, row_hash String, pushed_at DateTime, version UInt64) ENGINE = ReplacingMergeTree(version) ORDER BY (campaign_id, experiment_id, metric)`,
      }),
    );
  }

  private async hashes(table: string, keyExpr: string, campaignId: string): Promise<Map<string, Set<string>>> {
    const rows = await this.run('read existing rows', async () => {
      // A quoted literal, not {param:Type}: query parameters do not exist before ClickHouse 19.
      const rs = await this.client.query({ query: `SELECT ${keyExpr} AS k, row_hash FROM ${table} WHERE campaign_id = ${sqlString(campaignId)}`, format: 'JSONEachRow' });
      return rs.json<{ k: string; row_hash: string }>();
    });
    const out = new Map<string, Set<string>>();
    for (const r of rows) {
      const s = out.get(r.k) ?? new Set<string>();
      s.add(r.row_hash);
      out.set(r.k, s);
    }
    return out;
  }

  storedRunHashes(campaignId: string): Promise<Map<string, Set<string>>> {
    return this.hashes(this.runs, 'run_id', campaignId);
  }

  storedAggregateHashes(campaignId: string): Promise<Map<string, Set<string>>> {
    return this.hashes(this.aggs, "concat(experiment_id, '/', metric)", campaignId);
  }

  private stamp(): { pushed_at: string; version: number } {
    const now = new Date();
    return { pushed_at: now.toISOString().slice(0, 19).replace('T', ' '), version: now.getTime() };
  }

  async insertRuns(rows: readonly RunRow[]): Promise<void> {
    const s = this.stamp();
    await this.run('insert runs', () => this.client.insert({ table: this.runs, values: rows.map((r) => ({ ...r, ...s })), format: 'JSONEachRow' }));
  }

  async insertAggregates(rows: readonly AggregateRow[]): Promise<void> {
    const s = this.stamp();
    await this.run('insert aggregates', () => this.client.insert({ table: this.aggs, values: rows.map((r) => ({ ...r, ...s })), format: 'JSONEachRow' }));
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}
