/**
 * Hardened service containers on the real engine, read back with inspect: a non-root user, only
 * the campaign's run directory writable, the HF cache read-only, no privilege, no added
 * capabilities, no Docker socket, the bridge network, a compose project per campaign, no HF_TOKEN
 * in calibration; adoption only on a matching configuration hash; a container removed under a
 * campaign is recreated, within a bound.
 */
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDockerRuntime, type DockerRuntimeOptions } from '../../src/runtime/docker/runtime.js';
import { execCapture } from '../../src/runtime/docker/exec.js';
import { campaignProjectName, ServicesLostError } from '../../src/runtime/docker/services.js';
import type { RunSpec, RuntimeContext } from '../../src/runtime/types.js';
import { docker, engine, removeCampaignContainers, requireEngine, runDockerTests, tempWorkspace, TEST_IMAGE, uniqueId } from './engine.js';

const PROJECT = 'lemharden';
const campaigns: string[] = [];
/** The user lem picks here: its own uid:gid, or nobody when it runs as root on a root-owned state directory. */
const uid = process.getuid?.() ?? 0;
const EXPECTED_USER = uid === 0 ? '65534:65534' : `${uid}:${process.getgid?.() ?? 0}`;
/** Env without SUDO_* and LEM_WORKER_USER, so the default rule applies. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  for (const k of ['SUDO_UID', 'SUDO_GID', 'LEM_WORKER_USER', 'HF_TOKEN', 'HUGGING_FACE_HUB_TOKEN']) if (!(k in extra)) delete env[k];
  return env;
}

describe.skipIf(!runDockerTests)('hardened service containers (real engine)', () => {
  let root: string;
  let hfHome: string;
  let composeFile: string;

  beforeAll(async () => {
    await requireEngine();
    root = tempWorkspace('lem-harden-');
    hfHome = join(root, 'hf');
    composeFile = join(root, 'docker-compose.yml');
    writeFileSync(composeFile, `name: ${PROJECT}\nservices:\n  cpu:\n    image: ${TEST_IMAGE}\n  other:\n    image: ${TEST_IMAGE}\n`);
  });

  afterAll(async () => {
    for (const id of campaigns) await removeCampaignContainers(id);
  });

  function context(campaignId: string, extra: Partial<RuntimeContext> = {}): RuntimeContext {
    campaigns.push(campaignId);
    return { campaignId, workspaceRoot: root, forceColdStart: false, ...extra };
  }

  function runtime(extra: Partial<DockerRuntimeOptions> = {}, env: Record<string, string> = {}) {
    return createDockerRuntime({ engine, composeFiles: [composeFile], services: { pytorch: 'other' }, hfHome, env: cleanEnv(env), healthTimeoutS: 60, killGraceMs: 1_000, ...extra });
  }

  let seq = 0;
  function spec(campaignId: string, backend: RunSpec['backend'] = 'calibration'): RunSpec {
    seq++;
    const outDir = join(root, 'runs', campaignId, `exp${seq}`, 'c1-a1');
    mkdirSync(outDir, { recursive: true });
    return { runId: `${campaignId}:${seq}`, experimentId: `exp${seq}`, cycle: 1, attempt: 1, backend, configPath: join(outDir, 'config.json'), outDir, logPath: join(outDir, 'worker.log'), timeoutS: null, attemptToken: `lem-${campaignId}-p${seq}-a1` };
  }
  const scriptRuntime = (extra: Partial<DockerRuntimeOptions> = {}, env: Record<string, string> = {}) =>
    runtime({ workerCommand: (s) => ['sh', '-c', readFileSync(s.configPath, 'utf8')], ...extra }, env);
  function scriptSpec(campaignId: string, script: string): RunSpec {
    const s = spec(campaignId);
    writeFileSync(s.configPath, script);
    return s;
  }

  it('inspect: non-root user, only the run directory writable, HF cache read-only, no privilege/caps/socket, bridge, own project, no HF_TOKEN', async () => {
    const id = uniqueId('inspect');
    const token = `hf_secret${Math.random().toString(36).slice(2)}`;
    const rt = runtime({}, { HF_TOKEN: token });
    await rt.prepare(['calibration'], context(id));
    const [containerId = ''] = Object.values(rt.serviceContainers());
    const info = await docker.getContainer(containerId).inspect();
    const runs = join(root, 'runs', id);

    expect(info.Config.User).toBe(EXPECTED_USER);
    expect(info.HostConfig.Privileged).toBe(false);
    expect(info.HostConfig.CapAdd ?? []).toEqual([]);
    expect(info.HostConfig.NetworkMode).toBe('bridge');
    expect(info.HostConfig.DeviceRequests ?? []).toEqual([]); // the cpu service reserves no GPU
    expect(info.Mounts.some((m) => /docker\.sock/.test(m.Source) || /docker\.sock/.test(m.Destination))).toBe(false);
    // Writable: the campaign's run directory (and nothing above it); the HF cache read-only.
    const lockDir = process.env['LEM_LOCK_DIR'] ?? '/tmp/lem-device-locks'; // another branch mounts this one too
    expect(info.Mounts.filter((m) => m.RW && m.Source !== lockDir).map((m) => [m.Source, m.Destination])).toEqual([[runs, runs]]);
    expect(info.Mounts.find((m) => m.Source === hfHome)).toMatchObject({ Destination: hfHome, RW: false });
    expect(info.Mounts.some((m) => m.Source === root)).toBe(false);
    expect(info.Config.WorkingDir).toBe(runs);
    // A compose project of its own (`docker compose down` in the repository leaves it alone).
    expect(info.Config.Labels['com.docker.compose.project']).toBe(campaignProjectName(PROJECT, id));
    expect(info.Config.Labels['lem.project']).toBe(PROJECT);
    expect(info.Config.Labels['lem.config-hash']).toMatch(/^[0-9a-f]{64}$/);
    expect(info.Name).toBe(`/${campaignProjectName(PROJECT, id)}-cpu-1`);
    // The environment: HF offline with a read-only cache, no token anywhere in the container.
    expect(info.Config.Env).toContain(`HF_HOME=${hfHome}`);
    expect(info.Config.Env).toContain('HF_HUB_OFFLINE=1');
    expect(JSON.stringify(info)).not.toContain(token);

    // Inside: processes run as that user; the cache and the workspace above the runs are not writable.
    const idOut = await execCapture(docker, containerId, ['id', '-u']);
    expect(idOut.stdout.trim()).toBe(EXPECTED_USER.split(':')[0]);
    expect((await execCapture(docker, containerId, ['sh', '-c', `touch ${hfHome}/x`])).exitCode).not.toBe(0);
    expect((await execCapture(docker, containerId, ['sh', '-c', `touch ${root}/x`])).exitCode).not.toBe(0);

    // The real worker, as that user: its result belongs to the user, with the run files' mode.
    const s = spec(id);
    writeFileSync(
      s.configPath,
      JSON.stringify({
        run: { run_id: s.runId, experiment_id: s.experimentId, cycle: 1, attempt: 1 },
        experiment: { backend: 'calibration', measurement: { idle_baseline_s: 0, min_window_s: 0, sample_interval_ms: 100, cross_check_threshold: 0.05 }, extra: {}, calibration: { matrix_size: 32, duration_s: 0.2, dtype: 'float64', device: 'cpu' } },
      }),
    );
    const outcome = await rt.dispatch(s, new AbortController().signal, () => undefined);
    expect(outcome, readFileSync(s.logPath, 'utf8')).toEqual({ exitCode: 0, timedOut: false, failureReason: null });
    const result = statSync(join(s.outDir, 'result.json'));
    expect(`${result.uid}:${result.gid}`).toBe(EXPECTED_USER);
    expect(result.mode & 0o777).toBe(0o644);
    expect(statSync(s.logPath).mode & 0o777).toBe(0o644);
    expect(readFileSync(s.logPath, 'utf8')).not.toContain(token);
    await rt.shutdown({ keepServices: false, campaignId: id });
  });

  it('the HF cache is mounted read-write (and online) only when a model is not cached yet', async () => {
    const id = uniqueId('hfrw');
    const rt = runtime();
    await rt.prepare(['calibration'], context(id, { hub: { models: [{ id: 'lem-test/not-cached', revision: null }], datasets: [] } }));
    const [containerId = ''] = Object.values(rt.serviceContainers());
    const info = await docker.getContainer(containerId).inspect();
    expect(info.Mounts.find((m) => m.Source === hfHome)?.RW).toBe(true);
    expect(info.Config.Env).not.toContain('HF_HUB_OFFLINE=1');
    await rt.shutdown({ keepServices: false, campaignId: id });
  });

  it('adopts a running service only when its configuration hash matches; otherwise replaces it and says so', async () => {
    const id = uniqueId('hash');
    const ctx = context(id);
    const first = runtime();
    await first.prepare(['calibration'], ctx);
    const [original = ''] = Object.values(first.serviceContainers());

    const same = runtime();
    await same.prepare(['calibration'], ctx);
    expect(Object.values(same.serviceContainers())).toEqual([original]);

    // The service spec changed (a new environment variable): replaced, with a message.
    const changed = join(root, `changed-${id}.yml`);
    writeFileSync(changed, `name: ${PROJECT}\nservices:\n  cpu:\n    image: ${TEST_IMAGE}\n    environment: { LEM_CHANGED: "1" }\n`);
    const messages: string[] = [];
    const other = runtime({ composeFiles: [changed], log: (m) => messages.push(m) });
    await other.prepare(['calibration'], ctx);
    const [replacement = ''] = Object.values(other.serviceContainers());
    expect(replacement).not.toBe(original);
    expect(messages.join('\n')).toMatch(/replacing running service cpu .*configuration hash .* does not match/);
    await expect(docker.getContainer(original).inspect()).rejects.toThrow();
    expect((await docker.getContainer(replacement).inspect()).Config.Env).toContain('LEM_CHANGED=1');
    await other.shutdown({ keepServices: false, campaignId: id });
  });

  it('docker rm -f mid-run: that run fails, the next one gets a new container; past the bound the campaign stops', async () => {
    const id = uniqueId('rmf');
    const messages: string[] = [];
    const rt = scriptRuntime({ maxRecreations: 1, recreateBackoffMs: 100, log: (m) => messages.push(m) });
    await rt.prepare(['calibration'], context(id));
    const [first = ''] = Object.values(rt.serviceContainers());

    let started!: () => void;
    const isStarted = new Promise<void>((r) => (started = r));
    const pending = rt.dispatch(scriptSpec(id, 'echo running; sleep 300'), new AbortController().signal, () => started());
    await isStarted;
    await docker.getContainer(first).remove({ force: true });
    const failed = await pending;
    expect(failed.exitCode).not.toBe(0);
    expect(failed.failureReason).toMatch(/cpu service container .* (was removed|stopped) during the run/);

    const next = await rt.dispatch(scriptSpec(id, 'echo again'), new AbortController().signal, () => undefined);
    expect(next).toEqual({ exitCode: 0, timedOut: false, failureReason: null });
    const [second = ''] = Object.values(rt.serviceContainers());
    expect(second).not.toBe(first);
    expect(messages.join('\n')).toMatch(/recreation 1 of at most 1/);

    // Removed again: the bound (1) is spent, so the runtime stops the campaign instead of failing runs.
    await docker.getContainer(second).remove({ force: true });
    await expect(rt.dispatch(scriptSpec(id, 'echo never'), new AbortController().signal, () => undefined)).rejects.toThrow(ServicesLostError);
    await expect(rt.dispatch(scriptSpec(id, 'echo never'), new AbortController().signal, () => undefined)).rejects.toThrow(/removed \d times during this campaign.*lem campaign resume/);
    await rt.shutdown({ keepServices: false, campaignId: id });
  });

  it('shutdown with the campaign id removes containers an earlier session left behind', async () => {
    const id = uniqueId('leftover');
    const ctx = context(id);
    const killed = runtime();
    await killed.prepare(['calibration', 'pytorch'], ctx); // a session that never shuts down (kill -9)
    expect(Object.keys(killed.serviceContainers()).sort()).toEqual(['cpu', 'other']);
    const resumed = runtime(); // a resume that had nothing to run: no prepare
    await resumed.shutdown({ keepServices: false, campaignId: id });
    expect(await docker.listContainers({ all: true, filters: { label: [`lem.campaign=${id}`] } })).toEqual([]);
  });
});
