/**
 * `lem doctor`: is this machine ready for `runtime: docker`? Checks the engine (reachable,
 * version), the compose files, the backend images, GPU access (engine runtimes, nvidia-smi), the
 * Hugging Face cache and token (presence only), and says what is missing with the command that
 * fixes it. `--json` prints one JSON document.
 *
 * Exit 0 when nothing fails (warnings allowed), 1 otherwise, 2 for an unknown backend name. A
 * missing image or GPU is a warning, or a failure for the backends named in `backends`. With a
 * remote engine the GPUs are counted where the runs will run — by the worker's probe in a throwaway
 * container of a backend image on that engine — not by this machine's nvidia-smi.
 */
import { jsonDocument } from '../json.js';
import { accessSync, constants, existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { BACKENDS, backendsWhere, type BackendName } from '../../contract/backends.js';
import { defaultComposeFiles, loadCompose, type ComposeProject } from '../../runtime/docker/compose.js';
import { connectEngine, describeError, type Engine } from '../../runtime/docker/engine.js';
import { probeImage } from '../../runtime/docker/probe.js';
import { ProbeReport } from '../../campaign/preflight.js';
import { EXIT_FAILED_RUNS, EXIT_OK, EXIT_USAGE } from '../../util/errors.js';
import { packageRoot } from '../../util/paths.js';
import { backendServiceMap, imageStatuses, processIo, type CliIo, type ImageStatus } from './images.js';

export type CheckStatus = 'ok' | 'warn' | 'fail';

export interface Check {
  id: string;
  status: CheckStatus;
  summary: string;
  /** The command (or step) that fixes it, when not ok. */
  fix: string | null;
}

export interface DoctorOptions {
  json: boolean;
  /** Backends the user means to run: their missing images / GPUs are failures, not warnings. */
  backends?: string[];
  composeFiles?: string[];
  engine?: Engine;
  io?: CliIo;
  env?: NodeJS.ProcessEnv;
  /** A campaign file whose `hosts:` are checked too, each through its own engine. */
  campaign?: string;
}

export interface DoctorReport {
  ok: boolean;
  engine: { endpoint: string; reachable: boolean; version: string | null; api_version: string | null; os: string | null };
  gpu: { engine_runtimes: string[]; nvidia_runtime: boolean; host_gpus: string[] | null; engine_gpus: string[] | null; engine_gpus_source: string | null };
  checks: Check[];
}

const GPU_BACKENDS: readonly BackendName[] = backendsWhere((s) => s.gpu !== 'none');
const TOOLKIT_FIX =
  'install the NVIDIA Container Toolkit on the engine host (https://docs.nvidia.com/datacenter/cloud-native/container-toolkit/), then `sudo nvidia-ctk runtime configure --runtime=docker && sudo systemctl restart docker`';

export async function hostGpus(): Promise<string[] | null> {
  try {
    const r = await execa('nvidia-smi', ['-L'], { timeout: 15_000, reject: false });
    if (r.exitCode !== 0) return null;
    return String(r.stdout)
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean);
  } catch {
    return null;
  }
}

export async function doctorReport(opts: Omit<DoctorOptions, 'json' | 'io'> = {}): Promise<DoctorReport> {
  const env = opts.env ?? process.env;
  const wanted = new Set((opts.backends ?? []).filter((b): b is BackendName => (BACKENDS as readonly string[]).includes(b)));
  const checks: Check[] = [];
  const report: DoctorReport = {
    ok: false,
    engine: { endpoint: '', reachable: false, version: null, api_version: null, os: null },
    gpu: { engine_runtimes: [], nvidia_runtime: false, host_gpus: null, engine_gpus: null, engine_gpus_source: null },
    checks,
  };

  // Compose files.
  let project: ComposeProject | null = null;
  try {
    project = loadCompose(opts.composeFiles ?? defaultComposeFiles(packageRoot(), env), { env });
    checks.push({ id: 'compose', status: 'ok', summary: `compose files ${project.files.join(', ')}: services ${Object.keys(project.services).join(', ')}`, fix: null });
  } catch (err) {
    checks.push({ id: 'compose', status: 'fail', summary: err instanceof Error ? err.message : String(err), fix: 'fix the compose file at the place named' });
  }

  // Engine.
  let engine: Engine | null = null;
  try {
    engine = opts.engine ?? connectEngine(env);
    report.engine.endpoint = engine.endpoint.description;
  } catch (err) {
    checks.push({ id: 'engine', status: 'fail', summary: err instanceof Error ? err.message : String(err), fix: 'fix DOCKER_HOST / the docker context' });
  }
  if (engine) {
    try {
      const v = await engine.docker.version();
      report.engine = { endpoint: engine.endpoint.description, reachable: true, version: v.Version, api_version: v.ApiVersion, os: `${v.Os}/${v.Arch}` };
      checks.push({ id: 'engine', status: 'ok', summary: `Docker engine ${v.Version} (API ${v.ApiVersion}, ${v.Os}/${v.Arch}) at ${engine.endpoint.description}`, fix: null });
    } catch (err) {
      checks.push({
        id: 'engine',
        status: 'fail',
        summary: `cannot reach the Docker engine at ${engine.endpoint.description}: ${describeError(err)}`,
        fix: engine.endpoint.local
          ? 'start it: `sudo systemctl start docker` (or `sudo dockerd &`; on CI `.ci/docker-setup.sh`); without root, add yourself to the docker group'
          : 'check DOCKER_HOST and that the remote engine is up',
      });
    }
  }

  let statuses: ImageStatus[] = [];
  if (engine && report.engine.reachable) {
    // Images.
    if (project) {
      try {
        statuses = await imageStatuses(engine, project);
        for (const s of statuses) {
          const backend = s.backend as BackendName;
          if (s.present) {
            checks.push({ id: `image:${s.backend}`, status: 'ok', summary: `${s.image} present for ${s.backend} (${(s.id ?? '').replace(/^sha256:/, '').slice(0, 12)}, built ${s.created ?? '?'})`, fix: null });
          } else {
            checks.push({
              id: `image:${s.backend}`,
              status: wanted.has(backend) ? 'fail' : 'warn',
              summary: `${s.image} missing: backend ${s.backend} cannot run on the docker runtime`,
              fix: `lem images build ${s.backend}`,
            });
          }
        }
      } catch (err) {
        checks.push({ id: 'images', status: 'fail', summary: `cannot list images: ${describeError(err)}`, fix: null });
      }
    }
    // GPUs through the engine.
    try {
      const info = (await engine.docker.info()) as { Runtimes?: Record<string, unknown>; DefaultRuntime?: string };
      const runtimes = Object.keys(info.Runtimes ?? {});
      report.gpu.engine_runtimes = runtimes;
      report.gpu.nvidia_runtime = runtimes.includes('nvidia');
    } catch (err) {
      checks.push({ id: 'engine-info', status: 'warn', summary: `cannot read engine info: ${describeError(err)}`, fix: null });
    }
  }

  const gpuWanted = [...wanted].some((b) => GPU_BACKENDS.includes(b));
  if (engine && report.engine.reachable && !engine.endpoint.local) {
    // A remote engine: this machine's nvidia-smi says nothing about it; ask a worker there.
    checks.push(await remoteGpuCheck(engine, project, statuses, wanted, report, gpuWanted));
  } else {
    checks.push(await localGpuCheck(report, engine, gpuWanted));
  }

  // Hugging Face cache and token (presence only: the token is never printed).
  const hfHome = env['HF_HOME'] ?? join(homedir(), '.cache', 'huggingface');
  let hfOk = true;
  if (existsSync(hfHome)) {
    try {
      accessSync(hfHome, constants.W_OK);
    } catch {
      hfOk = false;
    }
  }
  checks.push(
    hfOk
      ? { id: 'hf-cache', status: 'ok', summary: `Hugging Face cache ${hfHome}${existsSync(hfHome) ? '' : ' (will be created)'} is mounted into the services`, fix: null }
      : { id: 'hf-cache', status: 'warn', summary: `Hugging Face cache ${hfHome} is not writable`, fix: `set HF_HOME to a writable directory or fix the permissions of ${hfHome}` },
  );
  const token = Boolean(env['HF_TOKEN'] || env['HUGGING_FACE_HUB_TOKEN']);
  checks.push({
    id: 'hf-token',
    status: token ? 'ok' : 'warn',
    summary: token ? 'HF_TOKEN is set (passed to each worker exec only)' : 'HF_TOKEN is not set: gated models (e.g. Llama) cannot be downloaded',
    fix: token ? null : 'export HF_TOKEN=... (a read token from https://huggingface.co/settings/tokens)',
  });

  if (opts.campaign !== undefined) {
    const [{ loadCampaign }, { checkHosts }] = await Promise.all([import('../../config/load.js'), import('../../runtime/docker/hosts-check.js')]);
    const hosts = loadCampaign(opts.campaign).settings.hosts;
    if (hosts) checks.push(...(await checkHosts(hosts, project, env)));
    else checks.push({ id: 'hosts', status: 'ok', summary: `${opts.campaign} has no hosts: (one engine)`, fix: null });
  }

  report.ok = checks.every((c) => c.status !== 'fail');
  return report;
}

/** GPUs on this host and the local engine's NVIDIA runtime (a local engine's containers see this host's GPUs). */
async function localGpuCheck(report: DoctorReport, engine: Engine | null, gpuWanted: boolean): Promise<Check> {
  report.gpu.host_gpus = await hostGpus();
  const hostHasGpus = report.gpu.host_gpus !== null && report.gpu.host_gpus.length > 0;
  if (report.gpu.nvidia_runtime && (hostHasGpus || (engine !== null && !engine.endpoint.local))) {
    return {
      id: 'gpu',
      status: 'ok',
      summary: `NVIDIA runtime registered with the engine${hostHasGpus ? `; ${report.gpu.host_gpus?.length} GPU(s): ${report.gpu.host_gpus?.join('; ')}` : ''}`,
      fix: null,
    };
  }
  if (hostHasGpus) {
    return {
      id: 'gpu',
      status: gpuWanted ? 'fail' : 'warn',
      summary: `${report.gpu.host_gpus?.length} GPU(s) on this host, but the engine has no NVIDIA runtime (runtimes: ${report.gpu.engine_runtimes.join(', ') || 'unknown'}): containers cannot use them`,
      fix: TOOLKIT_FIX,
    };
  }
  return {
    id: 'gpu',
    status: gpuWanted ? 'fail' : 'warn',
    summary: `no NVIDIA GPU visible (nvidia-smi ${report.gpu.host_gpus === null ? 'not found or failing' : 'lists none'}; engine runtimes: ${report.gpu.engine_runtimes.join(', ') || 'unknown'}): only calibration (CPU) can run`,
    fix: `install the NVIDIA driver and ${TOOLKIT_FIX}; or run GPU backends' plumbing without GPUs via LEM_COMPOSE_FILE=docker-compose.yml:compose/cpu-only.yml`,
  };
}

/** GPUs on a remote engine, as the worker's probe in a throwaway container of a backend image there sees them. */
async function remoteGpuCheck(engine: Engine, project: ComposeProject | null, statuses: readonly ImageStatus[], wanted: ReadonlySet<BackendName>, report: DoctorReport, gpuWanted: boolean): Promise<Check> {
  const present = statuses.filter((s) => s.present);
  const pick = present.find((s) => wanted.has(s.backend as BackendName) && GPU_BACKENDS.includes(s.backend as BackendName)) ?? present.find((s) => GPU_BACKENDS.includes(s.backend as BackendName)) ?? present[0];
  const def = pick && project ? project.services[backendServiceMap()[pick.backend as BackendName]] : undefined;
  const status: CheckStatus = gpuWanted ? 'fail' : 'warn';
  if (!pick || !def) return { id: 'gpu', status, summary: `no backend image on the engine at ${engine.endpoint.description} to count its GPUs with`, fix: 'lem images build' };
  const out = await probeImage(engine.docker, { def, backends: [pick.backend], project: project?.name ?? 'lem', gpus: 'compose', workerMount: null, engineDescription: engine.endpoint.description }, []);
  const parsed = out.ok ? ProbeReport.safeParse(out.report) : null;
  if (!out.ok || !parsed?.success) {
    const why = out.ok ? (out.note ?? 'its worker answered the probe with an unexpected document') : out.problem;
    return { id: 'gpu', status, summary: `cannot count the GPUs on the engine at ${engine.endpoint.description}: ${why}`, fix: out.ok ? `lem images build ${pick.backend}` : (out.fix ?? TOOLKIT_FIX) };
  }
  const g = parsed.data.gpus;
  report.gpu.engine_gpus = g.devices.map((d) => d.name);
  report.gpu.engine_gpus_source = `worker probe in ${def.image} on ${engine.endpoint.description}`;
  if (g.count > 0) return { id: 'gpu', status: 'ok', summary: `${g.count} GPU(s) visible in ${def.image} on the engine at ${engine.endpoint.description}: ${report.gpu.engine_gpus.join('; ')}`, fix: null };
  return { id: 'gpu', status, summary: `no GPU visible in ${def.image} on the engine at ${engine.endpoint.description}${g.reason ? ` (${g.reason})` : ''}: only calibration (CPU) can run there`, fix: TOOLKIT_FIX };
}

const MARK: Record<CheckStatus, string> = { ok: 'ok  ', warn: 'warn', fail: 'FAIL' };

export async function doctor(opts: DoctorOptions): Promise<number> {
  const io = opts.io ?? processIo;
  const unknown = (opts.backends ?? []).filter((b) => !(BACKENDS as readonly string[]).includes(b));
  if (unknown.length > 0) {
    io.err(`lem doctor: unknown backend ${unknown.join(', ')}; valid backends: ${BACKENDS.join(', ')}`);
    return EXIT_USAGE;
  }
  const report = await doctorReport(opts);
  if (opts.json) {
    io.out(JSON.stringify(jsonDocument('doctor', { ...report })));
  } else {
    for (const c of report.checks) {
      io.out(`[${MARK[c.status]}] ${c.id.padEnd(18)} ${c.summary}`);
      if (c.fix && c.status !== 'ok') io.out(`       ${''.padEnd(18)} fix: ${c.fix}`);
    }
    const fails = report.checks.filter((c) => c.status === 'fail').length;
    const warns = report.checks.filter((c) => c.status === 'warn').length;
    io.out(report.ok ? `ready${warns ? ` (${warns} warning${warns > 1 ? 's' : ''})` : ''}` : `not ready: ${fails} problem${fails > 1 ? 's' : ''} to fix`);
  }
  return report.ok ? EXIT_OK : EXIT_FAILED_RUNS;
}
