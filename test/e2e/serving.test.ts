/**
 * Serving mode end to end on the local runtime, against a FAKE OpenAI-compatible server
 * (images/worker/tests/fixtures/fake_openai_server.py: a real HTTP server speaking the streaming
 * protocol; it stands in for `vllm serve`). The built CLI runs the campaign with the real worker.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LEM, lem, ROOT, tempDir } from '../helpers/cli.js';

const FAKE_SERVER = join(ROOT, 'images', 'worker', 'tests', 'fixtures', 'fake_openai_server.py');
const FAKE_VLLM = join(ROOT, 'images', 'worker', 'tests', 'fixtures', 'fake_vllm_cli.py');

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

interface Stats {
  chat: number;
  completions: number;
}

function startFakeServer(): Promise<{ proc: ChildProcess; port: number }> {
  return new Promise((resolve, reject) => {
    const proc = spawn('python3', [FAKE_SERVER, '--port', '0', '--model', 'org/model', '--token-delay-s', '0.001'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    proc.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /READY (\d+)/.exec(out);
      if (m) resolve({ proc, port: Number(m[1]) });
    });
    proc.once('error', reject);
    proc.once('exit', (code) => reject(new Error(`fake server exited with ${code}`)));
  });
}

async function stats(port: number): Promise<Stats> {
  const r = await fetch(`http://127.0.0.1:${port}/stats`);
  return (await r.json()) as Stats;
}

type Serving = {
  warmup_requests: number;
  requests_completed: number;
  requests_failed: number;
  achieved_rate_rps: number;
  requested_rate_rps: number;
  latency_s: Record<string, Record<string, number | null>>;
  steady_window: { formed: boolean; rule: string };
  energy: { j_per_output_token: number | null; reason: string | null };
};

function results(state: string): Array<{ metrics: Record<string, number | null>; serving: Serving }> {
  const db = new Database(join(state, 'lem.db'), { readonly: true });
  const rows = db.prepare("SELECT result_path FROM runs WHERE status = 'succeeded' ORDER BY position").all() as Array<{ result_path: string }>;
  db.close();
  return rows.map((r) => JSON.parse(readFileSync(r.result_path, 'utf8')) as { metrics: Record<string, number | null>; serving: Serving });
}

function campaign(dir: string, body: string): string {
  const file = join(dir, 'serving.yaml');
  writeFileSync(file, body);
  return file;
}

describe('serving mode against a fake OpenAI-compatible server (local runtime)', () => {
  let server: { proc: ChildProcess; port: number };
  beforeAll(async () => {
    server = await startFakeServer();
  });
  afterAll(() => {
    server.proc.removeAllListeners('exit');
    server.proc.kill('SIGTERM');
  });

  it('a poisson 20 req/s, 100-request campaign completes with latency percentiles and the achieved rate; the server saw exactly 100 measured requests plus the recorded warm-up', async () => {
    const dir = tempDir();
    const state = join(dir, 'state');
    const before = await stats(server.port);
    const file = campaign(
      dir,
      `campaign_name: serving-e2e
base_config:
  backend: vllm
  model: {id: org/model}
  vllm: {endpoint: "http://127.0.0.1:${server.port}/v1"}
  traffic: {arrival: poisson, rate_rps: 20, requests: 100, seed: 1}
  max_output_tokens: 8
  prompts: {source: builtin, count: 10}
  warmup: {iterations: 2}
  measurement: {idle_baseline_s: 0, min_window_s: 0}
cycles: 1
thermal_gap: 0
runtime: local
retries: 0
`,
    );
    const r = lem(['--state', state, 'campaign', 'run', file]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/completed — 1 succeeded, 0 failed/);
    expect(r.stdout).toMatch(/vllm\s+achieved_rate_rps\s+1\/1/);
    const after = await stats(server.port);
    const [res] = results(state);
    expect(res).toBeDefined();
    const s = res!.serving;
    expect(s.warmup_requests).toBe(2);
    expect(after.chat - before.chat).toBe(100 + s.warmup_requests);
    expect(s.requests_completed).toBe(100);
    expect(s.requests_failed).toBe(0);
    for (const k of ['ttft', 'itl', 'tpot', 'e2e']) for (const q of ['p50', 'p90', 'p95', 'p99']) expect(s.latency_s[k]?.[q], `${k} ${q}`).toBeGreaterThan(0);
    expect(Math.abs(s.achieved_rate_rps - 20) / 20).toBeLessThan(0.15);
    expect(res!.metrics['achieved_rate_rps']).toBe(s.achieved_rate_rps);
    expect(s.steady_window.formed).toBe(true);
    // no GPU on this host: energy per token is null with the reason, never invented
    expect(s.energy.j_per_output_token).toBeNull();
    expect(s.energy.reason).toBeTruthy();
    const show = lem(['--state', state, 'results', 'show', 'serving-e2e']);
    expect(show.code).toBe(0);
    for (const m of ['achieved_rate_rps', 'ttft_p50_s', 'ttft_p99_s', 'itl_p50_s', 'tpot_p50_s', 'e2e_p99_s']) expect(show.stdout).toMatch(new RegExp(`vllm\\s+${m}\\s+1/1`));
  });

  it('VLLM_ENDPOINT fills the endpoint; a traffic.rate_rps sweep puts latency against the request rate in the report', async () => {
    const dir = tempDir();
    const state = join(dir, 'state');
    const file = campaign(
      dir,
      `campaign_name: serving-sweep
base_config:
  backend: vllm
  model: {id: org/model}
  traffic: {arrival: constant, requests: 20, seed: 3}
  max_output_tokens: 4
  prompts: {source: builtin, count: 5}
  warmup: {iterations: 1}
  measurement: {idle_baseline_s: 0, min_window_s: 0}
vary:
  traffic.rate_rps: [10, 40]
cycles: 1
thermal_gap: 0
runtime: local
retries: 0
`,
    );
    const before = await stats(server.port);
    const r = lem(['--state', state, 'campaign', 'run', file], { env: { VLLM_ENDPOINT: `http://127.0.0.1:${server.port}/v1` } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/VLLM_ENDPOINT=http:\/\/127\.0\.0\.1:\d+\/v1: vllm\.endpoint/);
    expect((await stats(server.port)).chat - before.chat).toBe(2 * (20 + 1));
    const rates = results(state).map((x) => x.serving.requested_rate_rps).sort((a, b) => a - b);
    expect(rates).toEqual([10, 40]);
    const out = join(dir, 'report.html');
    expect(lem(['--state', state, 'report', 'serving-sweep', '--out', out]).code).toBe(0);
    const html = readFileSync(out, 'utf8');
    expect(html).toContain('id="rate-sweep"');
    const ttft = /<svg class="plot rate-plot" data-metric="ttft_p50_s"[\s\S]*?<\/svg>/.exec(html)?.[0] ?? '';
    expect(ttft.match(/class="rate-point"/g)).toHaveLength(2);
    expect(ttft).toMatch(/class="rate-line"/);
    expect(html).toMatch(/j_per_output_token vs requested rate: not measured on this host/);
  });

  it('vllm.mode server (FAKE vllm executable): lem starts vllm serve, reuses it for the same engine arguments, restarts it when they change and stops it at the end', async () => {
    const dir = tempDir();
    const state = join(dir, 'state');
    const port = await freePort();
    const argvLog = join(dir, 'argv.jsonl');
    const file = campaign(
      dir,
      `campaign_name: managed
base_config:
  backend: vllm
  model: {id: org/model}
  vllm: {mode: server, endpoint: "http://127.0.0.1:${port}/v1", server_start_timeout_s: 60}
  traffic: {arrival: closed, concurrency: 2, requests: 8}
  max_output_tokens: 4
  prompts: {source: builtin, count: 4}
  warmup: {iterations: 1}
  measurement: {idle_baseline_s: 0, min_window_s: 0}
vary:
  vllm.max_num_seqs: [8, 16]
cycles: 2
structure: grouped
thermal_gap: 0
runtime: local
retries: 0
`,
    );
    const env = { LEM_VLLM_EXECUTABLE: FAKE_VLLM, LEM_SERVE_STATE_DIR: dir, FAKE_VLLM_ARGV_LOG: argvLog };
    try {
      const r = lem(['--state', state, 'campaign', 'run', file], { env });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/completed — 4 succeeded, 0 failed/);
      // grouped: 8, 8, 16, 16 -> started for the first run of each, reused by the second
      const starts = readFileSync(argvLog, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as string[]);
      expect(starts.map((a) => a[a.indexOf('--max-num-seqs') + 1]).sort()).toEqual(['16', '8']);
      const reused = results(state).map((x) => (x.serving as unknown as { server: { reused: boolean } }).server.reused);
      expect(reused.sort()).toEqual([false, false, true, true]);
      // the campaign's end stopped the vllm serve lem started (runtime shutdown: lem_worker serving-stop)
      expect(existsSync(join(dir, `lem-vllm-serve-${port}.json`))).toBe(false);
      await expect(fetch(`http://127.0.0.1:${port}/v1/models`)).rejects.toThrow();
    } finally {
      const stateFile = join(dir, `lem-vllm-serve-${port}.json`);
      if (existsSync(stateFile)) {
        const { pid } = JSON.parse(readFileSync(stateFile, 'utf8')) as { pid: number };
        try {
          process.kill(-pid, 'SIGTERM');
        } catch {
          // already gone
        }
      }
    }
  });

  it('vllm.mode server (FAKE vllm executable): an interrupted campaign (SIGINT) stops the vllm serve it started', async () => {
    const dir = tempDir();
    const state = join(dir, 'state');
    const port = await freePort();
    const stateFile = join(dir, `lem-vllm-serve-${port}.json`);
    const file = campaign(
      dir,
      `campaign_name: managed-interrupt
base_config:
  backend: vllm
  model: {id: org/model}
  vllm: {mode: server, endpoint: "http://127.0.0.1:${port}/v1", server_start_timeout_s: 60}
  traffic: {arrival: closed, concurrency: 1, requests: 100000}
  max_output_tokens: 64
  prompts: {source: builtin, count: 4}
  warmup: {iterations: 0}
  measurement: {idle_baseline_s: 0, min_window_s: 0}
thermal_gap: 0
runtime: local
retries: 0
`,
    );
    const env = { ...process.env, LEM_VLLM_EXECUTABLE: FAKE_VLLM, LEM_SERVE_STATE_DIR: dir };
    const child = spawn(process.execPath, [LEM, '--state', state, 'campaign', 'run', file], { cwd: ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    let serverPid: number | null = null;
    try {
      // interrupt once the server answers (it is up and the run is being measured)
      for (let i = 0; i < 600 && serverPid === null; i++) {
        await new Promise((r) => setTimeout(r, 100));
        if (!existsSync(stateFile)) continue;
        const ok = await fetch(`http://127.0.0.1:${port}/v1/models`).then((r) => r.ok, () => false);
        if (ok) serverPid = (JSON.parse(readFileSync(stateFile, 'utf8')) as { pid: number }).pid;
      }
      expect(serverPid, stderr).not.toBeNull();
      child.kill('SIGINT');
      expect(await exited, stderr).not.toBe(0);
      expect(existsSync(stateFile)).toBe(false);
      await expect(fetch(`http://127.0.0.1:${port}/v1/models`)).rejects.toThrow();
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      if (serverPid !== null) {
        try {
          process.kill(-serverPid, 'SIGKILL');
        } catch {
          // stopped, as it should be
        }
      }
    }
  });
});
