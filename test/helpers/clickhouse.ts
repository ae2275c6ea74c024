/**
 * A real ClickHouse server for tests: Debian's `clickhouse-server` (18.16) started as a plain process
 * with a config whose paths and ports point into a temporary directory, stopped by its pid.
 * `startClickhouse` returns null (with the reason) when the binary is missing or the server does not
 * come up; callers must FAIL, not skip, when process.env.CI is set (see requireClickhouse).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const CLICKHOUSE_BIN = process.env['LEM_TEST_CLICKHOUSE'] ?? '/usr/sbin/clickhouse-server';

export interface ClickhouseServer {
  url: string;
  httpPort: number;
  dir: string;
  pid: number;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function configXml(dir: string, http: number, tcp: number): string {
  return `<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>${dir}/log/server.log</log><errorlog>${dir}/log/server.err.log</errorlog><size>10M</size><count>1</count></logger>
  <http_port>${http}</http_port>
  <tcp_port>${tcp}</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <max_connections>64</max_connections>
  <keep_alive_timeout>3</keep_alive_timeout>
  <max_concurrent_queries>16</max_concurrent_queries>
  <uncompressed_cache_size>67108864</uncompressed_cache_size>
  <mark_cache_size>67108864</mark_cache_size>
  <path>${dir}/data/</path>
  <tmp_path>${dir}/tmp/</tmp_path>
  <user_files_path>${dir}/user_files/</user_files_path>
  <format_schema_path>${dir}/format_schemas/</format_schema_path>
  <users_config>${dir}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mlock_executable>false</mlock_executable>
  <builtin_dictionaries_reload_interval>3600</builtin_dictionaries_reload_interval>
  <max_session_timeout>3600</max_session_timeout>
  <default_session_timeout>60</default_session_timeout>
</yandex>
`;
}

/** users.xml: user `lem_test` with a password (so the test checks credentials are passed, and never printed). */
function usersXml(password: string): string {
  return `<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>1000000000</max_memory_usage><load_balancing>random</load_balancing></default></profiles>
  <users>
    <default><password></password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default>
    <lem_test><password>${password}</password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></lem_test>
  </users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
`;
}

export const TEST_USER = 'lem_test';
export const TEST_PASSWORD = 'pw-7f3a-not-a-secret';

async function ping(url: string): Promise<boolean> {
  try {
    const r = await fetch(`${url}/ping`, { signal: AbortSignal.timeout(1000) });
    return r.ok && (await r.text()).startsWith('Ok');
  } catch {
    return false;
  }
}

export async function startClickhouse(): Promise<ClickhouseServer | { error: string }> {
  if (!existsSync(CLICKHOUSE_BIN)) return { error: `${CLICKHOUSE_BIN} not found (apt-get install -y clickhouse-server)` };
  const dir = mkdtempSync(join(tmpdir(), 'lem-clickhouse-'));
  for (const d of ['data', 'tmp', 'user_files', 'format_schemas', 'log']) mkdirSync(join(dir, d), { recursive: true });
  const http = await freePort();
  const tcp = await freePort();
  writeFileSync(join(dir, 'config.xml'), configXml(dir, http, tcp));
  writeFileSync(join(dir, 'users.xml'), usersXml(TEST_PASSWORD));
  const child: ChildProcess = spawn(CLICKHOUSE_BIN, [`--config-file=${join(dir, 'config.xml')}`], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'], detached: false });
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => {
    stderr = (stderr + b.toString()).slice(-4000);
  });
  let exited: number | null = null;
  child.on('exit', (code) => {
    exited = code ?? -1;
  });
  const url = `http://127.0.0.1:${http}`;
  const stop = async (): Promise<void> => {
    if (exited === null && child.pid !== undefined) {
      const done = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await done;
      clearTimeout(t);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  for (let i = 0; i < 120; i++) {
    if (exited !== null) break;
    if (await ping(url)) return { url, httpPort: http, dir, pid: child.pid as number, stop };
    await new Promise((r) => setTimeout(r, 250));
  }
  const log = existsSync(join(dir, 'log', 'server.err.log')) ? readFileSync(join(dir, 'log', 'server.err.log'), 'utf8').slice(-2000) : '';
  await stop();
  return { error: `clickhouse-server did not answer /ping (exit ${String(exited)}): ${stderr.trim().slice(-1500)} ${log}` };
}
