/** The compose subset lem reads: good files, overrides, and refused fields with clear errors. */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { composeFromTexts, loadCompose, parseByteSize } from '../../src/runtime/docker/compose.js';
import { containerSpec } from '../../src/runtime/docker/service-spec.js';
import { parseEnvFile, readVersionsEnv } from '../../src/runtime/docker/versions.js';
import { ConfigError } from '../../src/util/errors.js';

const repo = resolve(import.meta.dirname, '../..');

function fromText(text: string, env: NodeJS.ProcessEnv = {}, extra: { file: string; text: string }[] = []) {
  return composeFromTexts([{ file: '/p/docker-compose.yml', text }, ...extra], { projectDir: '/p', env });
}

function refusal(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('compose: the repository files', () => {
  it('reads docker-compose.yml: four services with images, builds and GPU reservations', () => {
    const p = loadCompose([join(repo, 'docker-compose.yml')]);
    expect(p.name).toBe('lem');
    expect(Object.keys(p.services).sort()).toEqual(['cpu', 'pytorch', 'tensorrt', 'vllm']);
    const pt = p.services['pytorch'];
    expect(pt?.image).toBe('lem-pytorch');
    const versions = readVersionsEnv(repo);
    expect(pt?.build).toMatchObject({ context: repo, dockerfile: 'images/pytorch/Dockerfile' });
    expect(pt?.build?.args).toMatchObject({ BASE_IMAGE: versions['LEM_PYTORCH_BASE_IMAGE'], TRANSFORMERS_VERSION: versions['LEM_TRANSFORMERS_VERSION'] });
    expect(p.services['vllm']?.build?.args['BASE_IMAGE']).toBe(`vllm/vllm-openai:v${versions['LEM_VLLM_VERSION']}`);
    expect(p.services['tensorrt']?.build?.args['BASE_IMAGE']).toBe(`nvcr.io/nvidia/tensorrt-llm/release:${versions['LEM_TENSORRT_LLM_VERSION']}`);
    expect(pt?.devices).toEqual([{ driver: 'nvidia', count: -1, deviceIds: [], capabilities: ['gpu'], options: {} }]);
    expect(pt?.shmSize).toBe(8 * 1024 ** 3);
    expect(pt?.ulimits).toContainEqual({ name: 'memlock', soft: -1, hard: -1 });
    expect(pt?.environment['TOKENIZERS_PARALLELISM']).toBe('false');
    const cpu = p.services['cpu'];
    expect(cpu?.image).toBe('lem-cpu');
    expect(cpu?.devices).toEqual([]);
    expect(cpu?.build?.args['BASE_IMAGE']).toBe('python:3.12-slim');
  });

  it('versions live in images/versions.env only: the environment overrides it, and no Dockerfile or compose file pins one', () => {
    const p = loadCompose([join(repo, 'docker-compose.yml')], { env: { ...readVersionsEnv(repo), LEM_VLLM_BASE_IMAGE: 'my/vllm:dev' } });
    expect(p.services['vllm']?.build?.args['BASE_IMAGE']).toBe('my/vllm:dev');
    for (const f of ['docker-compose.yml', 'images/pytorch/Dockerfile', 'images/vllm/Dockerfile', 'images/tensorrt/Dockerfile', 'images/cpu/Dockerfile']) {
      expect(readFileSync(join(repo, f), 'utf8'), f).not.toMatch(/(vllm-openai|tensorrt-llm\/release|transformers=+|pytorch\/pytorch):?v?\d/);
    }
    expect(parseEnvFile('# c\nA=1\n B="x y" \nnot a line\n')).toEqual({ A: '1', B: 'x y' });
  });

  it('cpu-only.yml drops every GPU reservation (!reset)', () => {
    const p = loadCompose([join(repo, 'docker-compose.yml'), join(repo, 'compose/cpu-only.yml')]);
    for (const s of ['pytorch', 'vllm', 'tensorrt']) expect(p.services[s]?.devices).toEqual([]);
    expect(p.services['pytorch']?.shmSize).toBe(8 * 1024 ** 3);
  });

  it('multi-gpu.yml replaces the device list (!override) and merges the rest', () => {
    const p = loadCompose([join(repo, 'docker-compose.yml'), join(repo, 'compose/multi-gpu.yml')]);
    const v = p.services['vllm'];
    expect(v?.devices).toHaveLength(1);
    expect(v?.ipc).toBe('host');
    expect(v?.shmSize).toBe(32 * 1024 ** 3);
    expect(v?.image).toBe('lem-vllm');
  });
});

describe('compose: merging and syntax', () => {
  it('reads list forms, long volume syntax, interpolation and pass-through variables', () => {
    const p = fromText(
      `
services:
  a:
    build: ./ctx
    environment:
      - FOO=bar
      - FROM_HOST
      - MISSING
    volumes:
      - ./data:/data:ro
      - ~/models:/models
      - cache:/cache
      - type: bind
        source: /abs
        target: /abs-in
        read_only: true
    ipc: \${IPC_MODE:-host}
    shm_size: 512m
    ulimits:
      nofile: { soft: 1024, hard: 4096 }
    deploy:
      resources:
        reservations:
          devices:
            - driver: nvidia
              device_ids: ["0", 1]
              capabilities: [gpu, utility]
`,
      { FROM_HOST: 'hello' },
    );
    const a = p.services['a'];
    expect(p.name).toBe('p');
    expect(a?.image).toBe('p-a');
    expect(a?.build).toEqual({ context: '/p/ctx', dockerfile: 'Dockerfile', args: {} });
    expect(a?.environment).toEqual({ FOO: 'bar', FROM_HOST: 'hello' });
    expect(a?.volumes).toEqual([
      { type: 'bind', source: '/p/data', target: '/data', readOnly: true },
      { type: 'bind', source: join(homedir(), 'models'), target: '/models', readOnly: false },
      { type: 'volume', source: 'cache', target: '/cache', readOnly: false },
      { type: 'bind', source: '/abs', target: '/abs-in', readOnly: true },
    ]);
    expect(a?.ipc).toBe('host');
    expect(a?.shmSize).toBe(512 * 1024 ** 2);
    expect(a?.ulimits).toEqual([{ name: 'nofile', soft: 1024, hard: 4096 }]);
    expect(a?.devices).toEqual([{ driver: 'nvidia', count: 0, deviceIds: ['0', '1'], capabilities: ['gpu', 'utility'], options: {} }]);
  });

  it('merges override files like docker compose -f a -f b', () => {
    const p = fromText(
      `
name: base
services:
  a:
    image: img-a
    environment: { A: "1", B: "2" }
    volumes: ["/x:/x"]
    deploy: { resources: { reservations: { devices: [ { capabilities: [gpu], count: 1 } ] } } }
  b:
    image: img-b
`,
      {},
      [
        {
          file: '/p/override.yml',
          text: `
services:
  a:
    environment: { B: "3", C: "4" }
    volumes: ["/y:/x:ro", "/z:/z"]
    deploy: { resources: { reservations: { devices: [ { capabilities: [gpu], count: 2 } ] } } }
  b: !reset null
`,
        },
      ],
    );
    expect(Object.keys(p.services)).toEqual(['a']);
    const a = p.services['a'];
    expect(a?.environment).toEqual({ A: '1', B: '3', C: '4' });
    expect(a?.volumes.map((v) => `${v.source}:${v.target}:${v.readOnly}`)).toEqual(['/y:/x:true', '/z:/z:false']);
    expect(a?.devices.map((d) => d.count)).toEqual([1, 2]);
  });

  it('parses byte sizes like compose', () => {
    expect(parseByteSize('8gb')).toBe(8 * 1024 ** 3);
    expect(parseByteSize('64M')).toBe(64 * 1024 ** 2);
    expect(parseByteSize(1000)).toBe(1000);
    expect(parseByteSize('lots')).toBeNull();
  });
});

describe('compose: refused fields name the file, line and field', () => {
  it('refuses an unsupported service field', () => {
    const err = refusal(() =>
      fromText(`services:
  pytorch:
    image: lem-pytorch
    ports:
      - "8000:8000"
`),
    );
    expect(err.message).toMatch(/^\/p\/docker-compose\.yml:4:5: field 'services\.pytorch\.ports': service field 'ports' is not supported by lem; a service may only use image, build/);
  });

  it('refuses a nested unsupported field (deploy.resources.limits)', () => {
    const err = refusal(() =>
      fromText(`services:
  vllm:
    deploy:
      resources:
        limits: { memory: 8g }
`),
    );
    expect(err.message).toContain("/p/docker-compose.yml:5:9: field 'services.vllm.deploy.resources.limits'");
    expect(err.message).toContain("service field 'deploy.resources.limits' is not supported");
  });

  it('refuses unsupported build and top-level fields', () => {
    expect(refusal(() => fromText('services:\n  a:\n    build:\n      context: .\n      target: dev\n')).message).toContain(
      "field 'services.a.build.target'",
    );
    expect(refusal(() => fromText('services: {}\nnetworks:\n  n: {}\n')).message).toMatch(
      /docker-compose\.yml:2:1: field 'networks': top-level field 'networks' is not supported by lem/,
    );
  });

  it('refuses a refused field coming from an override file, naming that file', () => {
    const err = refusal(() => fromText('services:\n  a:\n    image: x\n', {}, [{ file: '/p/compose/extra.yml', text: 'services:\n  a:\n    command: ["x"]\n' }]));
    expect(err.message).toMatch(/^\/p\/compose\/extra\.yml:3:5: field 'services\.a\.command'/);
  });

  it('reports wrong types, bad sizes, bad volumes and bad YAML', () => {
    expect(refusal(() => fromText('services:\n  a:\n    shm_size: [1]\n')).message).toContain("field 'services.a.shm_size'");
    expect(refusal(() => fromText('services:\n  a:\n    shm_size: lots\n')).message).toContain('cannot read size "lots"');
    expect(refusal(() => fromText('services:\n  a:\n    volumes: ["/only"]\n')).message).toContain('anonymous volume');
    expect(refusal(() => fromText('services:\n  a: [\n')).message).toContain('not valid YAML');
    expect(refusal(() => fromText('services:\n  a:\n    ipc: ${NOPE:?set it}\n')).message).toContain('required variable NOPE is not set: set it');
  });

  it('reads real files from disk and reports a missing one', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lem-compose-'));
    writeFileSync(join(dir, 'docker-compose.yml'), 'services:\n  cpu:\n    image: mine\n');
    expect(loadCompose([join(dir, 'docker-compose.yml')]).services['cpu']?.image).toBe('mine');
    expect(refusal(() => loadCompose([join(dir, 'nope.yml')])).message).toContain('cannot read compose file: ENOENT');
  });
});

describe('compose: fields GPU servers write (cpuset, runtime, env_file, network_mode, ipc, ulimits, devices, group_add, security_opt)', () => {
  const gpuServer = `services:
  vllm:
    image: vllm/vllm-openai
    runtime: nvidia
    cpuset: "0-7,16"
    ipc: host
    network_mode: host
    env_file:
      - vllm.env
      - path: missing-is-fine.env
        required: false
    environment:
      SHARED: from-environment
    ulimits:
      memlock: -1
      stack: 67108864
    devices:
      - /dev/nvidia0:/dev/nvidia0:rwm
      - /dev/nvidiactl
      - source: /dev/nvidia-uvm
        permissions: rw
      - nvidia.com/gpu=all
    group_add: [video, 44]
    security_opt:
      - seccomp=unconfined
      - no-new-privileges:true
`;

  function project(extra: { file: string; text: string }[] = []) {
    const dir = mkdtempSync(join(tmpdir(), 'lem-compose-gpu-'));
    writeFileSync(join(dir, 'vllm.env'), '# the server\nexport VLLM_PORT=8000\nSHARED=from-env-file\nQUOTED="a b # not a comment"\nPLAIN=x # a comment\nFROM_SHELL\n');
    writeFileSync(join(dir, 'docker-compose.yml'), gpuServer);
    for (const e of extra) writeFileSync(join(dir, e.file), e.text);
    return { dir, p: loadCompose([join(dir, 'docker-compose.yml'), ...extra.map((e) => join(dir, e.file))], { env: { FROM_SHELL: 'shell-value' } }) };
  }

  it('reads each field into the service', () => {
    const { p } = project();
    const s = p.services['vllm'];
    expect(s?.runtime).toBe('nvidia');
    expect(s?.cpuset).toBe('0-7,16');
    expect(s?.ipc).toBe('host');
    expect(s?.networkMode).toBe('host');
    // env_file relative to the compose file; `environment` wins over it; a bare KEY from the environment.
    expect(s?.environment).toMatchObject({ VLLM_PORT: '8000', SHARED: 'from-environment', QUOTED: 'a b # not a comment', PLAIN: 'x', FROM_SHELL: 'shell-value' });
    expect(s?.ulimits).toEqual([
      { name: 'memlock', soft: -1, hard: -1 },
      { name: 'stack', soft: 67108864, hard: 67108864 },
    ]);
    expect(s?.deviceMappings).toEqual([
      { pathOnHost: '/dev/nvidia0', pathInContainer: '/dev/nvidia0', permissions: 'rwm' },
      { pathOnHost: '/dev/nvidiactl', pathInContainer: '/dev/nvidiactl', permissions: 'rwm' },
      { pathOnHost: '/dev/nvidia-uvm', pathInContainer: '/dev/nvidia-uvm', permissions: 'rw' },
    ]);
    expect(s?.devices).toEqual([{ driver: 'cdi', count: 0, deviceIds: ['nvidia.com/gpu=all'], capabilities: [], options: {} }]);
    expect(s?.groupAdd).toEqual(['video', '44']);
    expect(s?.securityOpt).toEqual(['seccomp=unconfined', 'no-new-privileges:true']);
  });

  it('maps each field to the Engine API create options, and stays unprivileged as a non-root user', () => {
    const { p } = project();
    const def = p.services['vllm'];
    if (!def) throw new Error('no vllm service');
    const spec = containerSpec(
      { name: 'vllm', def, backends: new Set(['vllm']) },
      { project: p, ctx: { campaignId: 'c1', workspaceRoot: '/ws', forceColdStart: false }, imageId: 'sha256:x', number: 1, hfHome: '/hf', gpus: 'compose', init: true, workerMount: null, user: '1000:1000', hfWritable: false, needsHome: false, extraBinds: [] },
    );
    const h = spec.HostConfig ?? {};
    expect(h.Runtime).toBe('nvidia');
    expect(h.CpusetCpus).toBe('0-7,16');
    expect(h.IpcMode).toBe('host');
    expect(h.NetworkMode).toBe('host');
    expect(h.Ulimits).toContainEqual({ Name: 'memlock', Soft: -1, Hard: -1 });
    expect(h.Devices).toContainEqual({ PathOnHost: '/dev/nvidia-uvm', PathInContainer: '/dev/nvidia-uvm', CgroupPermissions: 'rw' });
    expect(h.DeviceRequests).toEqual([{ Driver: 'cdi', DeviceIDs: ['nvidia.com/gpu=all'], Options: {} }]);
    expect(h.GroupAdd).toEqual(['video', '44']);
    expect(h.SecurityOpt).toEqual(['seccomp=unconfined', 'no-new-privileges:true']);
    expect(spec.Env).toContain('VLLM_PORT=8000');
    expect(spec.Env).toContain('SHARED=from-environment');
    expect(h.Privileged).toBe(false);
    expect(h.CapAdd).toBeUndefined();
    expect(spec.User).toBe('1000:1000');
  });

  it('without those fields the spec keeps lem defaults (bridge network, none of the options set)', () => {
    const p = fromText('services:\n  cpu:\n    image: lem-cpu\n');
    const def = p.services['cpu'];
    if (!def) throw new Error('no cpu service');
    const h = containerSpec({ name: 'cpu', def, backends: new Set(['calibration']) }, { project: p, ctx: { campaignId: 'c1', workspaceRoot: '/ws', forceColdStart: false }, imageId: 'sha256:x', number: 1, hfHome: '/hf', gpus: 'compose', init: true, workerMount: null, user: null, hfWritable: false, needsHome: false, extraBinds: [] }).HostConfig ?? {};
    expect(h.NetworkMode).toBe('bridge');
    for (const k of ['Runtime', 'CpusetCpus', 'Devices', 'GroupAdd', 'SecurityOpt'] as const) expect(h[k]).toBeUndefined();
  });

  it('merges override files: lists append, devices by container path, !reset removes, scalars replace', () => {
    const { p } = project([
      {
        file: 'cpu-host.yml',
        text: 'services:\n  vllm:\n    runtime: !reset null\n    network_mode: bridge\n    cpuset: "2"\n    group_add: [render]\n    security_opt: !reset []\n    devices:\n      - /dev/nvidia0:/dev/nvidia0:r\n    env_file: !reset []\n',
      },
    ]);
    const s = p.services['vllm'];
    expect(s?.runtime).toBeNull();
    expect(s?.networkMode).toBe('bridge');
    expect(s?.cpuset).toBe('2');
    expect(s?.groupAdd).toEqual(['video', '44', 'render']);
    expect(s?.securityOpt).toEqual([]);
    expect(s?.deviceMappings.find((d) => d.pathInContainer === '/dev/nvidia0')?.permissions).toBe('r');
    expect(s?.deviceMappings).toHaveLength(3);
    expect(s?.environment['VLLM_PORT']).toBeUndefined();
    expect(s?.environment['SHARED']).toBe('from-environment');
  });

  it('refuses what it cannot honour, at file:line:col with the field', () => {
    expect(refusal(() => fromText('services:\n  a:\n    image: x\n    privileged: true\n')).message).toMatch(/docker-compose\.yml:4:5: field 'services\.a\.privileged': service field 'privileged' is not supported/);
    expect(refusal(() => fromText('services:\n  a:\n    cap_add: [SYS_ADMIN]\n')).message).toContain("field 'services.a.cap_add'");
    expect(refusal(() => fromText('services:\n  a:\n    security_opt: ["systempaths=unconfined"]\n')).message).toMatch(/docker-compose\.yml:3:20: field 'services\.a\.security_opt\.0': security_opt: seccomp=/);
    expect(refusal(() => fromText('services:\n  a:\n    network_mode: "service:db"\n')).message).toContain('service:NAME is not supported by lem');
    expect(refusal(() => fromText('services:\n  a:\n    cpuset: "zero"\n')).message).toMatch(/docker-compose\.yml:3:5: field 'services\.a\.cpuset': cpuset: CPU numbers/);
    expect(refusal(() => fromText('services:\n  a:\n    devices: ["nvidia0"]\n')).message).toMatch(/docker-compose\.yml:3:15: field 'services\.a\.devices\.0': device "nvidia0": the host path must be absolute/);
    expect(refusal(() => fromText('services:\n  a:\n    devices: ["/dev/a:/dev/a:rwx"]\n')).message).toContain('permissions must be made of r, w and m');
    const missing = refusal(() => fromText('services:\n  a:\n    env_file: nope.env\n'));
    expect(missing.message).toMatch(/^\/p\/docker-compose\.yml:3:5: field 'services\.a\.env_file': cannot read env_file \/p\/nope\.env: ENOENT/);
    const dir = mkdtempSync(join(tmpdir(), 'lem-compose-env-'));
    writeFileSync(join(dir, 'bad.env'), 'GOOD=1\nthis is not a variable\n');
    writeFileSync(join(dir, 'docker-compose.yml'), 'services:\n  a:\n    env_file: [bad.env]\n');
    expect(refusal(() => loadCompose([join(dir, 'docker-compose.yml')])).message).toMatch(/docker-compose\.yml:3:16: field 'services\.a\.env_file\.0': env_file .*bad\.env:2: "this is not a variable" is not KEY=VALUE/);
  });
});
