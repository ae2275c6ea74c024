/**
 * `lem results push --clickhouse` against a real ClickHouse server (Debian's clickhouse-server 18.16,
 * started by test/helpers/clickhouse.ts as a plain process in a temporary directory). Under CI the
 * server must start: the test fails rather than skips.
 */
import { writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lem, tempDir } from '../helpers/cli.js';
import { startClickhouse, TEST_PASSWORD, TEST_USER, type ClickhouseServer } from '../helpers/clickhouse.js';
import { storeCampaign } from '../helpers/stored-campaign.js';

let server: ClickhouseServer | null = null;
let unavailable = '';
let state = '';

beforeAll(async () => {
  const s = await startClickhouse();
  if ('error' in s) {
    if (process.env['CI']) throw new Error(`ClickHouse is required in CI: ${s.error}`);
    unavailable = s.error;
    return;
  }
  server = s;
  state = tempDir('lem-push-');
  const runs = (base: number) => [1, 2, 3].map((c) => ({ energy_total_j: base * c, energy_gpu_j: base * c * 0.8, output_tokens_per_s: 100 + c, output_tokens: 1000, requests: 10, latency_p50_s: null }));
  storeCampaign(state, 'pushme', [
    { id: 'aaaaaaaaaaaa', name: "a'quoted", runs: runs(3.6e6) },
    { id: 'bbbbbbbbbbbb', name: 'b', runs: runs(7.2e6) },
  ], { carbon: { intensity_g_per_kwh: 100 } });
}, 60_000);

afterAll(async () => {
  await server?.stop();
});

async function sql(query: string): Promise<string> {
  if (!server) throw new Error('no server');
  const u = new URL(server.url);
  u.searchParams.set('query', query);
  u.searchParams.set('user', TEST_USER);
  u.searchParams.set('password', TEST_PASSWORD);
  // A fresh connection per query (no keep-alive socket that the server may have closed meanwhile).
  return new Promise((resolve, reject) => {
    get(u, { agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => (res.statusCode === 200 ? resolve(text.trim()) : reject(new Error(text))));
    }).on('error', reject);
  });
}

const env = { CLICKHOUSE_USER: TEST_USER, CLICKHOUSE_PASSWORD: TEST_PASSWORD };
const guard = (): boolean => {
  if (server) return true;
  console.warn(`skipping the ClickHouse push test outside CI: ${unavailable}`);
  return false;
};

describe('lem results push --clickhouse (real ClickHouse 18.16)', () => {
  it('creates the tables, writes per-run rows and per-experiment aggregates, and never prints the password', async () => {
    if (!guard() || !server) return;
    const r = lem(['--state', state, 'results', 'push', 'pushme', '--clickhouse', server.url, '--json'], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout + r.stderr).not.toContain(TEST_PASSWORD);
    const out = JSON.parse(r.stdout) as { runs: { inserted: number }; aggregates: { inserted: number } };
    expect(out.runs.inserted).toBe(6);
    expect(out.aggregates.inserted).toBeGreaterThan(0);
    expect(await sql('SELECT count() FROM default.lem_runs')).toBe('6');
    // 3.6e6 × (1+2+3) + 7.2e6 × (1+2+3) J
    expect(Number(await sql('SELECT sum(energy_total_j) FROM default.lem_runs'))).toBeCloseTo(6 * 3.6e6 + 6 * 7.2e6, 3);
    // emissions computed late from the campaign's carbon setting: 1 kWh at 100 g/kWh = 100 g for run a/c1
    expect(Number(await sql("SELECT emissions_g FROM default.lem_runs WHERE experiment_id = 'aaaaaaaaaaaa' AND cycle = 1"))).toBeCloseTo(100, 9);
    expect(await sql("SELECT arrayStringConcat(unmeasured, ',') FROM default.lem_runs WHERE experiment_id = 'bbbbbbbbbbbb' AND cycle = 2")).toBe('latency_p50_s');
    expect(Number(await sql("SELECT mean FROM default.lem_runs_experiments WHERE experiment_id = 'bbbbbbbbbbbb' AND metric = 'energy_total_j'"))).toBeCloseTo(2 * 7.2e6, 3);
    expect(await sql("SELECT count() FROM default.lem_runs WHERE experiment_name = 'a\\'quoted'")).toBe('3');
  });

  it('is idempotent: a second push inserts nothing', async () => {
    if (!guard() || !server) return;
    const r = lem(['--state', state, 'results', 'push', 'pushme', '--clickhouse', server.url, '--json'], { env });
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { runs: { inserted: number; unchanged: number }; aggregates: { inserted: number } };
    expect(out.runs).toMatchObject({ inserted: 0, unchanged: 6 });
    expect(out.aggregates.inserted).toBe(0);
    expect(await sql('SELECT count() FROM default.lem_runs')).toBe('6');
  });

  it('reads credentials from a file and writes to a named table', async () => {
    if (!guard() || !server) return;
    const file = join(state, 'ch.env');
    writeFileSync(file, `# test credentials\nCLICKHOUSE_USER=${TEST_USER}\nCLICKHOUSE_PASSWORD=${TEST_PASSWORD}\n`);
    const r = lem(['--state', state, 'results', 'push', 'pushme', '--clickhouse', server.url, '--table', 'other_runs', '--credentials-file', file], { env: { CLICKHOUSE_USER: '', CLICKHOUSE_PASSWORD: '' } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('6 inserted');
    expect(await sql('SELECT count() FROM default.other_runs')).toBe('6');
  });

  it('refuses credentials in the URL (exit 2) and reports a wrong password without echoing it (exit 1)', () => {
    if (!guard() || !server) return;
    const inUrl = lem(['--state', state, 'results', 'push', 'pushme', '--clickhouse', server.url.replace('http://', `http://${TEST_USER}:secret@`)]);
    expect(inUrl.code).toBe(2);
    expect(inUrl.stderr).toContain('CLICKHOUSE_USER');
    const wrong = 'wrong-pw-91c2';
    const r = lem(['--state', state, 'results', 'push', 'pushme', '--clickhouse', server.url], { env: { CLICKHOUSE_USER: TEST_USER, CLICKHOUSE_PASSWORD: wrong } });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/ClickHouse at http:\/\/127\.0\.0\.1:\d+/);
    expect(r.stdout + r.stderr).not.toContain(wrong);
  });
});
