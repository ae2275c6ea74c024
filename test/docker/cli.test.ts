/** `lem images build` and `lem doctor` (the plain functions behind the CLI) against the real engine. */
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { doctor, doctorReport } from '../../src/cli/commands/doctor.js';
import { imagesBuild, imagesList, type CliIo } from '../../src/cli/commands/images.js';
import { dockerfileSources } from '../../src/runtime/docker/images.js';
import { docker, engine, requireEngine, runDockerTests, tempWorkspace, uniqueId } from './engine.js';

const repo = resolve(import.meta.dirname, '../..');

function capture(): CliIo & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (t) => stdout.push(t), err: (t) => stderr.push(t) };
}

describe('dockerfileSources', () => {
  it('lists what the Dockerfiles copy, so only that is sent as build context', () => {
    expect(dockerfileSources('FROM x\nCOPY images/worker/lem_worker /opt/lem/worker/lem_worker\n')).toEqual(['images/worker/lem_worker']);
    expect(dockerfileSources('COPY --chown=1:1 a b /dst/\nCOPY --from=build /x /y\nADD ["c d", "/e"]\n')).toEqual(['a', 'b', 'c d']);
    expect(dockerfileSources('COPY *.py /x/\n')).toBeNull();
    expect(dockerfileSources('ADD https://example.com/f /f\n')).toBeNull();
    expect(dockerfileSources('COPY ../outside /x\n')).toBeNull();
  });
});

describe.skipIf(!runDockerTests)('lem images build / lem doctor (real engine)', () => {
  let root: string;
  let composeFile: string;
  const tag = `lemtest-build-${uniqueId('i').toLowerCase()}`;

  beforeAll(async () => {
    await requireEngine();
    root = tempWorkspace();
    composeFile = join(root, 'docker-compose.yml');
    writeFileSync(
      composeFile,
      `name: lemtest
services:
  cpu:
    image: ${tag}
    build:
      context: ${repo}
      dockerfile: images/cpu/Dockerfile
      args:
        BASE_IMAGE: no-such-registry.invalid/python:3.12-slim
  pytorch:
    image: lemtest-never-built
`,
    );
  });

  afterAll(async () => {
    await docker.getImage(tag).remove({ force: true }).catch(() => undefined);
  });

  it('builds through the engine with progress lines, --base-image overriding the compose default', async () => {
    const io = capture();
    // The offline base .ci/docker-setup.sh makes (no registry is needed).
    const base = process.env['LEM_BASE_IMAGE'] ?? 'lem-base:bookworm';
    const code = await imagesBuild({ backends: ['calibration'], json: true, baseImage: base, composeFiles: [composeFile], engine, io });
    expect(code, io.stderr.join('\n')).toBe(0);
    expect(io.stderr.some((l) => /^\[cpu\] Step \d+\/\d+ : FROM /.test(l))).toBe(true);
    const doc = JSON.parse(io.stdout.join('')) as { ok: boolean; images: { image: string; error: string | null }[] };
    expect(doc.ok).toBe(true);
    expect(doc.images).toEqual([expect.objectContaining({ image: tag, error: null })]);
    // The image works: its worker answers health.
    const c = await docker.createContainer({ Image: tag, Cmd: ['python3', '-m', 'lem_worker', 'health'] });
    await c.start();
    expect((await c.wait()).StatusCode).toBe(0);
    await c.remove({ force: true });
  });

  it('reports an unpullable base image and unknown backends clearly', async () => {
    const io = capture();
    const code = await imagesBuild({ backends: ['cpu'], json: false, composeFiles: [composeFile], engine, io });
    expect(code).toBe(1);
    const text = io.stdout.join('\n');
    expect(text).toContain(`==> building ${tag} (service cpu) on no-such-registry.invalid/python:3.12-slim`);
    expect(text).toMatch(/FAILED after/);
    const io2 = capture();
    expect(await imagesBuild({ backends: ['nope'], json: false, composeFiles: [composeFile], engine, io: io2 })).toBe(2);
    expect(io2.stderr.join('')).toContain('unknown backend nope');
  });

  it('doctor reports the engine, present and missing images with the fixing command, GPUs; --json', async () => {
    const report = await doctorReport({ composeFiles: [composeFile], engine });
    expect(report.engine.reachable).toBe(true);
    expect(report.engine.version).toMatch(/^\d+\./);
    const byId = Object.fromEntries(report.checks.map((c) => [c.id, c]));
    expect(byId['engine']?.status).toBe('ok');
    expect(byId['image:pytorch']).toMatchObject({ status: 'warn', fix: 'lem images build pytorch' });
    expect(byId['gpu']).toBeDefined();
    expect(report.checks.every((c) => c.status !== 'fail')).toBe(report.ok);

    // Naming the backend makes its missing image a failure.
    const io = capture();
    expect(await doctor({ json: true, backends: ['pytorch'], composeFiles: [composeFile], engine, io })).toBe(1);
    const doc = JSON.parse(io.stdout.join('')) as { ok: boolean; checks: { id: string; status: string }[] };
    expect(doc.ok).toBe(false);
    expect(doc.checks.find((c) => c.id === 'image:pytorch')?.status).toBe('fail');

    const human = capture();
    await doctor({ json: false, composeFiles: [composeFile], engine, io: human });
    expect(human.stdout.join('\n')).toMatch(/\[ok  \] engine +Docker engine/);
    expect(human.stdout.join('\n')).toContain('fix: lem images build pytorch');

    const ls = capture();
    expect(await imagesList({ json: false, composeFiles: [composeFile], engine, io: ls })).toBe(0);
    expect(ls.stdout.join('\n')).toMatch(/pytorch +lemtest-never-built +missing/);
  });

  it('doctor fails clearly when the engine cannot be reached', async () => {
    const report = await doctorReport({ composeFiles: [composeFile], env: { ...process.env, DOCKER_HOST: 'unix:///nonexistent/docker.sock' } });
    expect(report.ok).toBe(false);
    const eng = report.checks.find((c) => c.id === 'engine');
    expect(eng?.status).toBe('fail');
    expect(eng?.summary).toContain('cannot reach the Docker engine at unix:///nonexistent/docker.sock');
    expect(eng?.fix).toContain('systemctl start docker');
  });
});
