/**
 * The compose fields GPU servers use, on the real engine (the cpu image; no GPU here, so no
 * `runtime: nvidia`): cpuset, group_add, security_opt and env_file go from the compose file through
 * containerSpec to the created container, which starts and runs as the non-root user with the
 * added group, pinned to the CPU asked for, never privileged.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCompose } from '../../src/runtime/docker/compose.js';
import { campaignRunsDir, containerSpec } from '../../src/runtime/docker/service-spec.js';
import { docker, removeCampaignContainers, requireEngine, runDockerTests, tempWorkspace, TEST_IMAGE, uniqueId } from './engine.js';

describe.runIf(runDockerTests)('compose GPU-server fields on the real engine', () => {
  const campaignId = uniqueId('compose-fields');
  beforeAll(async () => {
    await requireEngine();
  });
  afterAll(async () => {
    await removeCampaignContainers(campaignId);
  });

  it('cpuset, group_add, security_opt and env_file reach the container; it starts unprivileged as the non-root user', async () => {
    const root = tempWorkspace('lem-compose-fields-');
    writeFileSync(join(root, 'server.env'), 'FROM_ENV_FILE=yes\n');
    writeFileSync(
      join(root, 'docker-compose.yml'),
      `name: lemtest\nservices:\n  cpu:\n    image: ${TEST_IMAGE}\n    cpuset: "0"\n    group_add: ["4321"]\n    security_opt: ["no-new-privileges:true"]\n    env_file: server.env\n`,
    );
    const project = loadCompose([join(root, 'docker-compose.yml')]);
    const def = project.services['cpu'];
    if (!def) throw new Error('no cpu service');
    const ctx = { campaignId, workspaceRoot: root, forceColdStart: false };
    mkdirSync(campaignRunsDir(ctx), { recursive: true });
    const hfHome = join(root, 'hf');
    mkdirSync(hfHome);
    const uid = process.getuid?.() ?? 65534;
    const gid = process.getgid?.() ?? 65534;
    const spec = containerSpec(
      { name: 'cpu', def, backends: new Set(['calibration']) },
      { project, ctx, imageId: TEST_IMAGE, number: 1, hfHome, gpus: 'compose', init: true, workerMount: null, user: `${uid}:${gid}`, hfWritable: false, needsHome: true, extraBinds: [] },
    );
    const container = await docker.createContainer(spec);
    await container.start();
    const info = await container.inspect();
    expect(info.HostConfig.CpusetCpus).toBe('0');
    expect(info.HostConfig.GroupAdd).toEqual(['4321']);
    expect(info.HostConfig.SecurityOpt).toEqual(['no-new-privileges:true']);
    expect(info.HostConfig.Privileged).toBe(false);
    expect(info.Config.Env).toContain('FROM_ENV_FILE=yes');
    expect(info.Config.User).toBe(`${uid}:${gid}`);
    // Inside: the added group is one of the process's groups, and only CPU 0 is allowed.
    const out = execFileSync('docker', ['exec', info.Id, 'sh', '-c', 'id -G; grep Cpus_allowed_list /proc/self/status'], { encoding: 'utf8' });
    const [groups = '', cpus = ''] = out.trim().split('\n');
    expect(groups.split(' ')).toContain('4321');
    expect(cpus.replace(/\s+/g, ' ')).toBe('Cpus_allowed_list: 0');
  });
});
