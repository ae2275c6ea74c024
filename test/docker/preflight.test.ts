/**
 * Preflight on the real Docker engine: a campaign whose image is missing exits 2 before anything is
 * recorded or started (no campaign row, no container with its project label); the worker's probe in
 * a throwaway container of a real image reports packages and GPUs and leaves no container behind;
 * a throwaway container a killed lem left behind is removed by the next lem on the host.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProbeReport } from '../../src/campaign/preflight.js';
import { doctorReport } from '../../src/cli/commands/doctor.js';
import { loadCompose } from '../../src/runtime/docker/compose.js';
import { probeImage, PROBE_LABEL } from '../../src/runtime/docker/probe.js';
import { OWNER_LABEL, sweepDeadThrowaways } from '../../src/runtime/docker/throwaway.js';
import { workerDir } from '../../src/util/paths.js';
import { lem } from '../helpers/cli.js';
import { docker, engine, requireEngine, runDockerTests, TEST_IMAGE, tempWorkspace, uniqueId } from './engine.js';

const projects: string[] = [];
const images: string[] = [];

/** TEST_IMAGE with this checkout's worker copied in (the image may predate `probe`), committed as a new tag. */
async function imageWithThisWorker(tag: string): Promise<void> {
  const c = await docker.createContainer({ Image: TEST_IMAGE, Cmd: ['true'] });
  try {
    const tar = spawn('tar', ['-c', '--exclude=__pycache__', '-C', workerDir(), 'lem_worker'], { stdio: ['ignore', 'pipe', 'inherit'] });
    await c.putArchive(tar.stdout, { path: '/opt/lem/worker' });
    const [repo, t] = tag.split(':');
    await c.commit({ repo, tag: t });
    images.push(tag);
  } finally {
    await c.remove({ force: true });
  }
}
const withLabel = async (label: string) => docker.listContainers({ all: true, filters: { label: [label] } });

describe.skipIf(!runDockerTests)('preflight on the docker runtime (real engine)', () => {
  beforeAll(async () => {
    await requireEngine();
  });
  afterAll(async () => {
    for (const i of images) await docker.getImage(i).remove({ force: true }).catch(() => undefined);
    for (const p of projects) {
      for (const label of [`lem.project=${p}`, `${PROBE_LABEL}=${p}`]) for (const c of await withLabel(label)) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
    }
  });

  it('a missing image fails preflight with exit 2: no campaign row, no container', async () => {
    const dir = tempWorkspace('lem-preflight-');
    const project = uniqueId('lempre').toLowerCase().replace(/[^a-z0-9-]/g, '');
    projects.push(project);
    const image = `lem-no-such-image-${project}:never`;
    writeFileSync(join(dir, 'docker-compose.yml'), `name: ${project}\nservices:\n  cpu:\n    image: ${image}\n`);
    writeFileSync(join(dir, 'c.yaml'), 'campaign_name: pre\nbase_config:\n  backend: calibration\n  calibration: { duration_s: 0.1 }\ncycles: 1\nruntime: docker\n');
    const state = join(dir, 'state');
    const r = lem(['--state', state, 'campaign', 'run', join(dir, 'c.yaml')], { env: { LEM_COMPOSE_FILE: join(dir, 'docker-compose.yml') } });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`image ${image} (service cpu, backend calibration) is not on the Docker engine`);
    expect(r.stderr).toContain('fix: lem images build calibration');
    const list = lem(['--state', state, 'campaign', 'list', '--json']);
    expect((JSON.parse(list.stdout) as { campaigns: unknown[] }).campaigns).toEqual([]);
    expect(await withLabel(`lem.project=${project}`)).toEqual([]);
    expect(await withLabel(`${PROBE_LABEL}=${project}`)).toEqual([]);
  });

  it('the worker probe runs in a throwaway container of the image and leaves none behind', async () => {
    const project = uniqueId('lemprobe').toLowerCase().replace(/[^a-z0-9-]/g, '');
    projects.push(project);
    const dir = tempWorkspace('lem-probe-');
    writeFileSync(join(dir, 'docker-compose.yml'), `name: ${project}\nservices:\n  cpu:\n    image: ${TEST_IMAGE}\n`);
    const def = loadCompose([join(dir, 'docker-compose.yml')]).services['cpu'];
    if (!def) throw new Error('no cpu service');
    // This checkout's worker over the image's copy (the image may predate `probe`).
    const out = await probeImage(docker, { def, backends: ['calibration'], project, gpus: 'compose', workerMount: workerDir(), engineDescription: engine.endpoint.description }, [{ backend: 'calibration' }, { backend: 'vllm' }]);
    expect(out.ok).toBe(true);
    const report = ProbeReport.parse(out.ok ? out.report : null);
    expect(report.packages['numpy']).not.toBeNull();
    expect(report.missing).toContainEqual({ package: 'vllm', needed_by: ['backend vllm'] });
    expect(report.gpus.count).toBe(report.gpus.devices.length);
    expect(await withLabel(`${PROBE_LABEL}=${project}`)).toEqual([]);
  });

  it('a throwaway container left by a dead lem (created, never started) is removed by the next sweep; a live lem’s or another host’s is kept', async () => {
    const project = uniqueId('lemsweep').toLowerCase().replace(/[^a-z0-9-]/g, '');
    projects.push(project);
    // A lem killed between create and start leaves such a container (AutoRemove applies only once it has run).
    const dead = spawn(process.execPath, ['-e', '0']);
    const deadPid = await new Promise<number>((resolve) => dead.on('exit', () => resolve(dead.pid as number)));
    const make = (owner: string | null) =>
      docker.createContainer({ Image: TEST_IMAGE, Cmd: ['true'], Labels: { [PROBE_LABEL]: project, ...(owner ? { [OWNER_LABEL]: owner } : {}) } });
    const deadOwners = await make(`${hostname()}:${deadPid}`);
    const noOwner = await make(null);
    const live = await make(`${hostname()}:${process.pid}`);
    const elsewhere = await make(`some-other-host:${deadPid}`);
    const exited = await make(`${hostname()}:${deadPid}`);
    await exited.start();
    await exited.wait();
    const removed = await sweepDeadThrowaways(docker);
    const left = (await withLabel(`${PROBE_LABEL}=${project}`)).map((c) => c.Id).sort();
    // Only the two of the dead owner go (the sweep covers the whole engine, so count at least them).
    expect(removed).toBeGreaterThanOrEqual(2);
    expect(left).toEqual([noOwner.id, live.id, elsewhere.id].sort());
  });

  it('doctor counts a remote engine’s GPUs through the worker’s probe there, not this machine’s nvidia-smi', async () => {
    const project = uniqueId('lemdoc').toLowerCase().replace(/[^a-z0-9-]/g, '');
    projects.push(project);
    const tag = `lem-probe-test-${project}:latest`;
    await imageWithThisWorker(tag);
    const dir = tempWorkspace('lem-doctor-');
    writeFileSync(join(dir, 'docker-compose.yml'), `name: ${project}\nservices:\n  cpu:\n    image: ${tag}\n`);
    // The local engine, described as a remote one (what DOCKER_HOST=tcp://… gives).
    const remote = { docker, endpoint: { ...engine.endpoint, local: false, description: 'tcp://gpu-box.test:2376' } };
    const report = await doctorReport({ composeFiles: [join(dir, 'docker-compose.yml')], engine: remote });
    const gpu = report.checks.find((c) => c.id === 'gpu');
    expect(report.gpu.host_gpus).toBeNull(); // nvidia-smi was not asked
    expect(report.gpu.engine_gpus_source).toBe(`worker probe in ${tag} on tcp://gpu-box.test:2376`);
    expect(report.gpu.engine_gpus).toEqual([]); // this CI engine has no GPU
    expect(gpu).toMatchObject({ status: 'warn' });
    expect(gpu?.summary).toContain(`no GPU visible in ${tag} on the engine at tcp://gpu-box.test:2376`);
    expect(await withLabel(`${PROBE_LABEL}=${project}`)).toEqual([]);
  });
});
