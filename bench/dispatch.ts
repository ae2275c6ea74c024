/**
 * Dispatch: the per-run wall time of a 0.1 s calibration run through lem on the docker runtime
 * (`lem campaign run`, whatever dispatch path the runtime uses: an exec per run, or a persistent
 * worker) against `docker exec <container> python3 -m lem_worker run CONFIG --out DIR` of the same
 * run config in the same running container. Both through public interfaces, so the figure holds
 * before and after the persistent worker. Needs a Docker engine, the docker CLI and lem-cpu.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Manifest } from '../src/manifest/manifest.js';
import { systemClock } from '../src/util/clock.js';
import { packageRoot } from '../src/util/paths.js';
import type { Figure } from './figure.js';

const median = (xs: number[]): number => {
  const s = xs.slice().sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

function docker(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('docker', args, { encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

export function benchDispatch(runs = 20): Figure[] | string {
  if (docker(['version', '--format', '{{.Server.Version}}']).status !== 0) return 'skipped: no docker CLI or engine';
  if (docker(['image', 'inspect', 'lem-cpu']).status !== 0) return 'skipped: no lem-cpu image (lem images build calibration)';
  const dir = mkdtempSync(join(tmpdir(), 'lem-bench-dispatch-'));
  let campaignId: string | null = null;
  try {
    // network_mode none: the calibration run needs no network, and it keeps the bench off the host's bridge.
    writeFileSync(join(dir, 'compose.yml'), 'name: lembench\nservices:\n  cpu:\n    image: lem-cpu\n    network_mode: none\n');
    writeFileSync(
      join(dir, 'c.yaml'),
      `campaign_name: dispatch\nbase_config:\n  backend: calibration\n  calibration: {duration_s: 0.1, matrix_size: 64}\n  measurement: {min_window_s: 0, idle_baseline_s: 0}\ncycles: ${runs}\nthermal_gap: 0\nruntime: docker\nkeep_services: true\nretries: 0\n`,
    );
    const state = join(dir, 'state');
    const t0 = performance.now();
    const r = spawnSync(process.execPath, [join(packageRoot(), 'bin', 'lem.js'), '--state', state, 'campaign', 'run', join(dir, 'c.yaml'), '--json'], {
      encoding: 'utf8',
      // A private device-lock directory: other lem processes on this host never make these runs wait.
      env: { ...process.env, LEM_COMPOSE_FILE: join(dir, 'compose.yml'), LEM_LOCK_DIR: join(dir, 'locks') },
      timeout: 600_000,
    });
    const campaignWallMs = performance.now() - t0;
    if (r.status !== 0) return `failed: lem campaign run exited ${r.status}: ${r.stderr.trim().split('\n').slice(-1)[0] ?? ''}`;
    campaignId = (JSON.parse(r.stdout) as { campaign: string }).campaign;
    const m = Manifest.open(join(state, 'lem.db'), systemClock);
    const rows = m.runs(campaignId);
    m.close();
    const ms = (s: string | null): number => (s ? Date.parse(s) : NaN);
    const perRun = rows.map((x) => ms(x.endedAt) - ms(x.startedAt));
    // Per-run wall time through lem: the median interval from one run's start to the next (dispatch,
    // the run, ingest and bookkeeping; robust to a stall on this shared host), and the whole span / runs.
    const starts = rows.map((x) => ms(x.startedAt)).sort((a, b) => a - b);
    const startToStart = median(starts.slice(1).map((t, i) => t - (starts[i] as number)));
    const span = (Math.max(...rows.map((x) => ms(x.endedAt))) - Math.min(...starts)) / rows.length;

    const container = docker(['ps', '-q', '--filter', `label=lem.campaign=${campaignId}`]).stdout.trim().split('\n')[0];
    if (!container) return 'failed: the kept service container is gone';
    const runsDir = join(state, 'runs', campaignId);
    const exp = readdirSync(runsDir, { withFileTypes: true }).find((d) => d.isDirectory());
    if (!exp) return 'failed: no run directory';
    const config = join(runsDir, exp.name, 'c1-a1', 'config.json');
    const bare: number[] = [];
    for (let i = -1; i < runs; i++) {
      const out = join(runsDir, exp.name, `bare-${i + 1}`);
      mkdirSync(out);
      chmodSync(out, 0o777); // the worker runs as a non-root user in the container
      const s = performance.now();
      const x = docker(['exec', container, 'python3', '-m', 'lem_worker', 'run', config, '--out', out]);
      const dt = performance.now() - s;
      if (x.status !== 0) return `failed: docker exec of the worker exited ${x.status}: ${x.stderr.trim().split('\n').slice(-1)[0] ?? ''}`;
      if (i >= 0) bare.push(dt); // the first is an untimed warm-up
    }
    return [
      { name: 'lem campaign (docker runtime): per run, start to next start (median)', value: startToStart, unit: 'ms' },
      { name: `  per run, first start to last end / ${rows.length}`, value: span, unit: 'ms' },
      { name: '  per run, started → ended in the manifest (median)', value: median(perRun), unit: 'ms' },
      { name: '  whole `lem campaign run` process, incl. service start', value: campaignWallMs, unit: 'ms' },
      { name: '`docker exec` of the worker CLI, same run, same container (median)', value: median(bare), unit: 'ms' },
      { name: 'lem per run (median start to start) / bare docker exec (median)', value: startToStart / median(bare), unit: '×', target: '≤ 0.5×' },
    ];
  } finally {
    if (campaignId) {
      const ids = docker(['ps', '-aq', '--filter', `label=lem.campaign=${campaignId}`]).stdout.trim().split('\n').filter(Boolean);
      if (ids.length) docker(['rm', '-f', ...ids]);
    }
    rmSync(dir, { recursive: true, force: true });
  }
}
