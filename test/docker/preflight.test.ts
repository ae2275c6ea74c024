/**
 * Preflight on the real Docker engine: a campaign whose image is missing exits 2 before anything is
 * recorded or started (no campaign row, no container with its project label); the worker's probe in
 * a throwaway container of a real image reports packages and GPUs and leaves no container behind.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProbeReport } from '../../src/campaign/preflight.js';
import { loadCompose } from '../../src/runtime/docker/compose.js';
import { probeImage, PROBE_LABEL } from '../../src/runtime/docker/probe.js';
import { workerDir } from '../../src/util/paths.js';
import { lem } from '../helpers/cli.js';
import { docker, engine, requireEngine, runDockerTests, TEST_IMAGE, tempWorkspace, uniqueId } from './engine.js';

const projects: string[] = [];
const withLabel = async (label: string) => docker.listContainers({ all: true, filters: { label: [label] } });

describe.skipIf(!runDockerTests)('preflight on the docker runtime (real engine)', () => {
  beforeAll(async () => {
    await requireEngine();
  });
  afterAll(async () => {
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
});
