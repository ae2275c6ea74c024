/**
 * Orchestration overhead per experiment on the docker runtime, against starting a fresh container
 * per experiment.
 *
 *  - exec: the docker runtime's dispatch() of a trivial command into the long-running service
 *    (exec create/start, pid wrapper, demuxed log file, exit-code inspect, container-state check):
 *    everything lem adds around a run except the run itself.
 *  - run --rm (API): create + attach + start + wait + auto-remove of a fresh container from the
 *    same image with the same mounts, through the engine API: the `docker run --rm` design.
 *  - run --rm (CLI): the same through the docker CLI, when one is installed.
 *
 * Returns medians in ms. Run: `npm run build && node dist/bench/docker-overhead.js [iterations]`.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Writable } from 'node:stream';
import { execa } from 'execa';
import { connectEngine, type Engine } from '../src/runtime/docker/engine.js';
import { createDockerRuntime } from '../src/runtime/docker/runtime.js';
import type { RunSpec } from '../src/runtime/types.js';

export interface DockerOverheadOptions {
  iterations?: number;
  /** Image for the service and the fresh containers; default lem-cpu. */
  image?: string;
  engine?: Engine;
  /** Also time the docker CLI (`docker run --rm`) when it is on PATH. Default true. */
  cli?: boolean;
}

export interface DockerOverheadResult {
  iterations: number;
  image: string;
  engine: string;
  /** Median ms per experiment: exec dispatch into the running service (the docker runtime). */
  execMedianMs: number;
  /** Median ms per experiment: fresh container per experiment via the engine API. */
  runRmMedianMs: number;
  /** Median ms per experiment: `docker run --rm` via the CLI; null when not measured. */
  cliRunRmMedianMs: number | null;
  /** One-off cost of starting the service and waiting for the worker's health check. */
  serviceStartMs: number;
  execSamplesMs: number[];
  runRmSamplesMs: number[];
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] ?? 0) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
}

const round = (x: number): number => Math.round(x * 100) / 100;

export async function dockerOverhead(opts: DockerOverheadOptions = {}): Promise<DockerOverheadResult> {
  const iterations = opts.iterations ?? 20;
  const image = opts.image ?? 'lem-cpu';
  const engine = opts.engine ?? connectEngine();
  const docker = engine.docker;
  const root = mkdtempSync(join(tmpdir(), 'lem-bench-docker-'));
  const composeFile = join(root, 'docker-compose.yml');
  writeFileSync(composeFile, `name: lembench\nservices:\n  cpu:\n    image: ${image}\n`);
  const campaignId = `bench-${process.pid}-${Date.now().toString(36)}`;
  const rt = createDockerRuntime({ engine, composeFiles: [composeFile], workerCommand: () => ['true'] });

  const execSamples: number[] = [];
  const runSamples: number[] = [];
  let cliSamples: number[] | null = null;
  let serviceStartMs = 0;
  try {
    const t0 = performance.now();
    await rt.prepare(['calibration'], { campaignId, workspaceRoot: root, forceColdStart: false });
    serviceStartMs = performance.now() - t0;

    const spec = (i: number): RunSpec => {
      const outDir = join(root, 'runs', campaignId, `e${i}`, 'c1-a1');
      mkdirSync(outDir, { recursive: true });
      return {
        runId: `${campaignId}:${i}`,
        experimentId: `e${i}`,
        cycle: 1,
        attempt: 1,
        backend: 'calibration',
        configPath: join(outDir, 'config.json'),
        outDir,
        logPath: join(outDir, 'worker.log'),
        timeoutS: 60,
        attemptToken: `lem-${campaignId}-p${i}-a1`,
      };
    };
    const never = new AbortController().signal;
    // One untimed warm-up of each path.
    for (let i = -1; i < iterations; i++) {
      const s = spec(i);
      const t = performance.now();
      const r = await rt.dispatch(s, never, () => undefined);
      const dt = performance.now() - t;
      if (r.exitCode !== 0) throw new Error(`exec dispatch failed: ${JSON.stringify(r)}`);
      if (i >= 0) execSamples.push(dt);
    }

    const sink = (): Writable => new Writable({ write: (_c, _e, cb) => cb() });
    for (let i = -1; i < iterations; i++) {
      const t = performance.now();
      const c = await docker.createContainer({
        Image: image,
        Cmd: ['true'],
        AttachStdout: true,
        AttachStderr: true,
        WorkingDir: root,
        HostConfig: { AutoRemove: true, Binds: [`${root}:${root}`], Init: true },
      });
      const stream = await c.attach({ stream: true, stdout: true, stderr: true });
      docker.modem.demuxStream(stream, sink(), sink());
      const waited = c.wait({ condition: 'next-exit' });
      await c.start();
      const res = (await waited) as { StatusCode: number };
      const dt = performance.now() - t;
      if (res.StatusCode !== 0) throw new Error(`docker run equivalent failed with ${res.StatusCode}`);
      if (i >= 0) runSamples.push(dt);
    }

    if (opts.cli !== false) {
      const hasCli = await execa('docker', ['version', '--format', '{{.Server.Version}}'], { reject: false }).then(
        (r) => r.exitCode === 0,
        () => false,
      );
      if (hasCli) {
        cliSamples = [];
        for (let i = -1; i < iterations; i++) {
          const t = performance.now();
          await execa('docker', ['run', '--rm', '--init', '-v', `${root}:${root}`, '-w', root, image, 'true']);
          if (i >= 0) cliSamples.push(performance.now() - t);
        }
      }
    }
  } finally {
    await rt.shutdown({ keepServices: false }).catch(() => undefined);
    rmSync(root, { recursive: true, force: true });
  }
  return {
    iterations,
    image,
    engine: engine.endpoint.description,
    execMedianMs: round(median(execSamples)),
    runRmMedianMs: round(median(runSamples)),
    cliRunRmMedianMs: cliSamples ? round(median(cliSamples)) : null,
    serviceStartMs: round(serviceStartMs),
    execSamplesMs: execSamples.map(round),
    runRmSamplesMs: runSamples.map(round),
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const n = Number(process.argv[2] ?? 20);
  dockerOverhead({ iterations: Number.isFinite(n) && n > 0 ? n : 20 }).then(
    (r) => {
      const { execSamplesMs: _a, runRmSamplesMs: _b, ...summary } = r;
      process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
    },
    (err: unknown) => {
      process.stderr.write(`docker-overhead: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
