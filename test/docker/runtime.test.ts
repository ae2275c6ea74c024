/**
 * The docker runtime against the real engine: long-running services, exec dispatch, timeouts,
 * dead containers, re-adoption, cold starts and teardown. Checks go through the engine itself
 * (labels, inspect, `ps` inside the container), not through the runtime's own bookkeeping.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunSpec, RuntimeContext } from '../../src/runtime/types.js';
import { createDockerRuntime, decodeHandle, type DockerRuntimeOptions } from '../../src/runtime/docker/runtime.js';
import { campaignProjectName } from '../../src/runtime/docker/services.js';
import { execCapture } from '../../src/runtime/docker/exec.js';
import {
  containersWithLabel,
  docker,
  engine,
  removeCampaignContainers,
  requireEngine,
  runDockerTests,
  sleep,
  tempWorkspace,
  TEST_IMAGE,
  uniqueId,
} from './engine.js';

const PROJECT = 'lemtest';
const campaigns: string[] = [];

describe.skipIf(!runDockerTests)('docker runtime (real engine)', () => {
  let root: string;
  let composeFile: string;

  beforeAll(async () => {
    await requireEngine();
    root = tempWorkspace();
    composeFile = join(root, 'docker-compose.yml');
    // Two services from the one offline image, so "one container per needed service" is visible.
    writeFileSync(
      composeFile,
      `name: ${PROJECT}
services:
  cpu:
    image: ${TEST_IMAGE}
    environment: { LEM_TEST_SERVICE: cpu }
  other:
    image: ${TEST_IMAGE}
    environment: { LEM_TEST_SERVICE: other }
    shm_size: 128m
    ulimits: { nofile: { soft: 4096, hard: 8192 } }
  unused:
    image: ${TEST_IMAGE}
`,
    );
  });

  afterAll(async () => {
    for (const id of campaigns) await removeCampaignContainers(id);
  });

  function context(campaignId: string, forceColdStart = false): RuntimeContext {
    campaigns.push(campaignId);
    return { campaignId, workspaceRoot: root, forceColdStart };
  }

  function runtime(extra: Partial<DockerRuntimeOptions> = {}) {
    return createDockerRuntime({
      engine,
      composeFiles: [composeFile],
      services: { pytorch: 'other' },
      healthTimeoutS: 60,
      killGraceMs: 1_000,
      ...extra,
    });
  }

  let seq = 0;
  function spec(campaignId: string, timeoutS: number | null = null): RunSpec {
    seq++;
    const outDir = join(root, 'runs', campaignId, `exp${seq}`, 'c1-a1');
    mkdirSync(outDir, { recursive: true });
    return {
      runId: `${campaignId}:${seq}`,
      experimentId: `exp${seq}`,
      cycle: 1,
      attempt: 1,
      backend: 'calibration',
      configPath: join(outDir, 'config.json'),
      outDir,
      logPath: join(outDir, 'worker.log'),
      timeoutS,
      attemptToken: `lem-${campaignId}-p${seq}-a1`,
    };
  }

  /** A runtime whose "worker" is a shell script (given per spec through the config path). */
  function scriptRuntime(extra: Partial<DockerRuntimeOptions> = {}) {
    return runtime({ workerCommand: (s) => ['sh', '-c', readFileSync(s.configPath, 'utf8')], ...extra });
  }
  function scriptSpec(campaignId: string, script: string, timeoutS: number | null = null): RunSpec {
    const s = spec(campaignId, timeoutS);
    writeFileSync(s.configPath, script);
    return s;
  }

  async function psInContainer(containerId: string): Promise<string> {
    const r = await execCapture(docker, containerId, ['ps', '-eo', 'pid,args']);
    expect(r.exitCode).toBe(0);
    return r.stdout;
  }

  it('prepare starts exactly one labelled container per needed service and re-adopts it on resume', async () => {
    const id = uniqueId('prep');
    const ctx = context(id);
    const rt = runtime();
    await rt.prepare(['calibration', 'pytorch', 'calibration'], ctx);

    const mine = await containersWithLabel(`lem.campaign=${id}`);
    expect(mine.map((c) => c.Labels['com.docker.compose.service']).sort()).toEqual(['cpu', 'other']);
    for (const c of mine) {
      expect(c.State).toBe('running');
      expect(c.Labels).toMatchObject({
        'com.docker.compose.project': campaignProjectName(PROJECT, id),
        'lem.project': PROJECT,
        'com.docker.compose.oneoff': 'False',
        'lem.campaign': id,
        'lem.managed-by': 'lem',
      });
      expect(Number(c.Labels['com.docker.compose.container-number'])).toBeGreaterThanOrEqual(1);
      expect(c.Names[0]).toMatch(new RegExp(`^/${campaignProjectName(PROJECT, id)}-(cpu|other)-1$`));
    }
    const cpu = mine.find((c) => c.Labels['com.docker.compose.service'] === 'cpu');
    expect(cpu?.Labels['lem.backend']).toBe('calibration');
    // The compose settings reach the container; the campaign's run directory is mounted at the same path.
    const other = await docker.getContainer(mine.find((c) => c !== cpu)?.Id ?? '').inspect();
    expect(other.HostConfig.ShmSize).toBe(128 * 1024 * 1024);
    expect(other.HostConfig.Ulimits).toContainEqual({ Name: 'nofile', Soft: 4096, Hard: 8192 });
    expect(other.Config.Env).toContain('LEM_TEST_SERVICE=other');
    const runs = join(root, 'runs', id);
    expect(other.Mounts.some((m) => m.Source === runs && m.Destination === runs && m.RW)).toBe(true);
    expect(await containersWithLabel(`com.docker.compose.service=unused`).then((l) => l.filter((c) => c.Labels['lem.campaign'] === id))).toEqual([]);

    // A second session of the same campaign (resume) adopts the running containers.
    const rt2 = runtime();
    await rt2.prepare(['calibration', 'pytorch'], { ...ctx });
    const after = await containersWithLabel(`lem.campaign=${id}`);
    expect(after.map((c) => c.Id).sort()).toEqual(mine.map((c) => c.Id).sort());
    expect(Object.values(rt2.serviceContainers()).sort()).toEqual(mine.map((c) => c.Id).sort());

    await rt2.shutdown({ keepServices: false });
    expect(await containersWithLabel(`lem.campaign=${id}`)).toEqual([]);
  });

  it('dispatch execs into the service, streams the log live and returns exit codes', async () => {
    const id = uniqueId('exec');
    const rt = scriptRuntime();
    await rt.prepare(['calibration'], context(id));
    const [containerId] = Object.values(rt.serviceContainers());

    const ok = scriptSpec(id, 'echo "to stdout"; echo "to stderr" >&2; sleep 1.5; echo done; exit 0');
    const handles: string[] = [];
    const pending = rt.dispatch(ok, new AbortController().signal, (h) => handles.push(h));
    // Live: the first lines are in the log file while the run is still going.
    let live = '';
    for (let i = 0; i < 100 && !live.includes('to stderr'); i++) {
      await sleep(20);
      live = existsSync(ok.logPath) ? readFileSync(ok.logPath, 'utf8') : '';
    }
    expect(live).toContain('to stdout');
    expect(live).toContain('to stderr');
    expect(live).not.toContain('done');
    const outcome = await pending;
    expect(outcome).toEqual({ exitCode: 0, timedOut: false, failureReason: null });
    const log = readFileSync(ok.logPath, 'utf8');
    // stdout and stderr are separate streams in the engine: their relative order is not kept.
    expect(log.split('\n').slice(0, 2).sort()).toEqual(['to stderr', 'to stdout']);
    expect(log.endsWith('done\n')).toBe(true);
    expect(log.length).toBe('to stdout\nto stderr\ndone\n'.length);
    expect(log).not.toContain('LEMPID');
    expect(handles).toHaveLength(1);
    expect(decodeHandle(handles[0] ?? '')?.containerId).toBe(containerId);

    const bad = scriptSpec(id, 'echo "lem-worker: run failed: nope" >&2; exit 3');
    expect(await rt.dispatch(bad, new AbortController().signal, () => undefined)).toEqual({ exitCode: 3, timedOut: false, failureReason: null });
    expect(readFileSync(bad.logPath, 'utf8')).toContain('run failed: nope');

    // Every run was an exec in the one container: still exactly one container for the campaign.
    expect((await containersWithLabel(`lem.campaign=${id}`)).map((c) => c.Id)).toEqual([containerId]);
    await rt.shutdown({ keepServices: false });
  });

  it('runs the real worker: python3 -m lem_worker run writes result.json into the mounted run dir', async () => {
    const id = uniqueId('worker');
    const rt = runtime();
    await rt.prepare(['calibration'], context(id));
    const s = spec(id);
    writeFileSync(
      s.configPath,
      JSON.stringify({
        run: { run_id: s.runId, experiment_id: s.experimentId, cycle: 1, attempt: 1 },
        experiment: {
          backend: 'calibration',
          measurement: { idle_baseline_s: 0, min_window_s: 0, sample_interval_ms: 100, cross_check_threshold: 0.05 },
          extra: {},
          calibration: { matrix_size: 32, duration_s: 0.3, dtype: 'float64', device: 'cpu' },
        },
      }),
    );
    const outcome = await rt.dispatch(s, new AbortController().signal, () => undefined);
    expect(outcome, readFileSync(s.logPath, 'utf8')).toEqual({ exitCode: 0, timedOut: false, failureReason: null });
    const result = JSON.parse(readFileSync(join(s.outDir, 'result.json'), 'utf8')) as { run_id: string; backend: string };
    expect(result.run_id).toBe(s.runId);
    expect(result.backend).toBe('calibration');
    await rt.shutdown({ keepServices: false });
  });

  it('a timeout kills the exec\'d process inside the container (TERM, then KILL when ignored)', async () => {
    const id = uniqueId('timeout');
    const rt = scriptRuntime();
    await rt.prepare(['calibration'], context(id));
    const [containerId = ''] = Object.values(rt.serviceContainers());

    for (const script of ['echo start; sleep 300', 'trap "" TERM; echo start; while :; do sleep 1; done']) {
      let handle = '';
      const outcome = await rt.dispatch(scriptSpec(id, script, 1), new AbortController().signal, (h) => (handle = h));
      expect(outcome.timedOut).toBe(true);
      expect(outcome.failureReason).toMatch(/timed out after 1s/);
      // No timing assertion: a process that survived would keep dispatch waiting (sleep 300 / forever)
      // past the test's timeout, and the ps check below fails if it is still there.
      const h = decodeHandle(handle);
      expect(h).not.toBeNull();
      const ps = await psInContainer(containerId);
      expect(ps.split('\n').some((l) => l.trim().split(/\s+/)[0] === String(h?.pid))).toBe(false);
      expect(ps).not.toMatch(/sleep 300|sleep 1$/m);
    }
    await rt.shutdown({ keepServices: false });
  });

  it('docker kill of the container mid-run fails the run with the reason; the next dispatch restarts the service', async () => {
    const id = uniqueId('kill');
    const rt = scriptRuntime();
    await rt.prepare(['calibration'], context(id));
    const [containerId = ''] = Object.values(rt.serviceContainers());

    let started!: () => void;
    const isStarted = new Promise<void>((r) => (started = r));
    const pending = rt.dispatch(scriptSpec(id, 'echo running; sleep 300'), new AbortController().signal, () => started());
    await isStarted;
    await docker.getContainer(containerId).kill();
    const outcome = await pending;
    expect(outcome.timedOut).toBe(false);
    expect(outcome.failureReason).toMatch(/the cpu service container \(lemtest-kill-[a-z0-9-]+-cpu-\d+\) stopped during the run: exit code 137/);

    const next = await rt.dispatch(scriptSpec(id, 'echo again'), new AbortController().signal, () => undefined);
    expect(next).toEqual({ exitCode: 0, timedOut: false, failureReason: null });
    expect((await docker.getContainer(containerId).inspect()).State.Running).toBe(true);
    await rt.shutdown({ keepServices: false });
  });

  it('abort stops the in-container process and resolves with "interrupted"; reap stops an orphan', async () => {
    const id = uniqueId('abort');
    const rt = scriptRuntime();
    await rt.prepare(['calibration'], context(id));
    const [containerId = ''] = Object.values(rt.serviceContainers());

    const ac = new AbortController();
    let handle = '';
    const pending = rt.dispatch(scriptSpec(id, 'echo x; sleep 300'), ac.signal, (h) => {
      handle = h;
      setTimeout(() => ac.abort(), 200);
    });
    const outcome = await pending;
    expect(outcome.failureReason).toBe('interrupted');
    const pid = decodeHandle(handle)?.pid;
    expect((await psInContainer(containerId)).split('\n').some((l) => l.trim().split(/\s+/)[0] === String(pid))).toBe(false);

    // An orphan: a process left running in the service (as after kill -9 of lem), stopped by reap().
    const orphanCtl = new AbortController();
    let orphanHandle = '';
    const orphanRun = rt.dispatch(scriptSpec(id, 'trap "" TERM; sleep 300'), orphanCtl.signal, (h) => (orphanHandle = h));
    for (let i = 0; i < 200 && !orphanHandle; i++) await sleep(10);
    const fresh = runtime(); // a new session, as after a restart of the orchestrator
    await fresh.reap(orphanHandle);
    const orphanOutcome = await orphanRun;
    expect(orphanOutcome.exitCode).toBe(137);
    const h = decodeHandle(orphanHandle);
    expect((await psInContainer(containerId)).split('\n').some((l) => l.trim().split(/\s+/)[0] === String(h?.pid))).toBe(false);
    await fresh.reap(orphanHandle); // gone already: a no-op
    await fresh.reap('pid:123'); // not ours: ignored
    await rt.shutdown({ keepServices: false });
  });

  it('forceColdStart restarts the service container between runs', async () => {
    const id = uniqueId('cold');
    const rt = scriptRuntime();
    await rt.prepare(['calibration'], context(id, true));
    const [containerId = ''] = Object.values(rt.serviceContainers());
    const starts: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await rt.dispatch(scriptSpec(id, 'cat /proc/1/stat > /dev/null'), new AbortController().signal, () => undefined);
      expect(r.exitCode).toBe(0);
      starts.push((await docker.getContainer(containerId).inspect()).State.StartedAt);
    }
    expect(new Set(starts).size).toBe(3);
    await rt.shutdown({ keepServices: false });
  });

  it('passes HF_TOKEN only through the exec of a backend that loads from the hub, never to calibration or the container config', async () => {
    const id = uniqueId('token');
    const token = `hf_test${Math.random().toString(36).slice(2)}`;
    const rt = scriptRuntime({ env: { ...process.env, HF_TOKEN: token } });
    await rt.prepare(['calibration', 'pytorch'], context(id));
    const hub = { ...scriptSpec(id, `test "$HF_TOKEN" = "${token}" && echo token-seen`), backend: 'pytorch' as const };
    expect((await rt.dispatch(hub, new AbortController().signal, () => undefined)).exitCode).toBe(0);
    const calib = scriptSpec(id, 'test -z "$HF_TOKEN" && echo no-token');
    expect((await rt.dispatch(calib, new AbortController().signal, () => undefined)).exitCode).toBe(0);
    expect(readFileSync(calib.logPath, 'utf8')).toContain('no-token');
    for (const containerId of Object.values(rt.serviceContainers())) {
      const inspect = JSON.stringify(await docker.getContainer(containerId).inspect());
      expect(inspect).not.toContain(token);
      expect(inspect).toContain('HF_HOME=');
    }
    await rt.shutdown({ keepServices: false });
  });

  it('keepServices leaves the services running; a missing image is a clear error', async () => {
    const id = uniqueId('keep');
    const rt = runtime();
    await rt.prepare(['calibration'], context(id));
    await rt.shutdown({ keepServices: true });
    const kept = await containersWithLabel(`lem.campaign=${id}`, false);
    expect(kept).toHaveLength(1);
    await removeCampaignContainers(id);

    const missingCompose = join(root, 'missing.yml');
    writeFileSync(missingCompose, 'services:\n  cpu:\n    image: lem-no-such-image:none\n');
    const broken = runtime({ composeFiles: [missingCompose] });
    await expect(broken.prepare(['calibration'], context(uniqueId('missing')))).rejects.toThrow(
      /image lem-no-such-image:none \(service cpu, backend calibration\) is not on the Docker engine .*lem images build calibration/,
    );
  });
});
