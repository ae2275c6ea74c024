/**
 * `lem images build [BACKEND…]`: builds the backend images (lem-pytorch, lem-vllm, lem-tensorrt,
 * lem-cpu) from docker-compose.yml through the engine API, showing build progress.
 * `lem images ls`: which of them the engine has.
 *
 * Plain functions returning an exit code; the commander wiring lives in src/cli/main.ts.
 */
import { jsonDocument } from '../json.js';
import { BACKENDS, type BackendName } from '../../contract/backends.js';
import { defaultComposeFiles, loadCompose, type ComposeProject } from '../../runtime/docker/compose.js';
import { connectEngine, engineVersion, statusCode, type Engine } from '../../runtime/docker/engine.js';
import { buildServiceImage, servicesFor, type BuildOutcome } from '../../runtime/docker/images.js';
import { DEFAULT_SERVICES } from '../../runtime/docker/runtime.js';
import { EXIT_FAILED_RUNS, EXIT_OK, EXIT_USAGE, LemError } from '../../util/errors.js';
import { packageRoot } from '../../util/paths.js';

export interface CliIo {
  out: (text: string) => void;
  err: (text: string) => void;
}

export const processIo: CliIo = {
  out: (t) => process.stdout.write(t.endsWith('\n') ? t : `${t}\n`),
  err: (t) => process.stderr.write(t.endsWith('\n') ? t : `${t}\n`),
};

export interface ImagesBuildOptions {
  /** Backends (pytorch, vllm, tensorrt, calibration) or service names (cpu); empty = all. */
  backends: string[];
  json: boolean;
  /** Overrides the BASE_IMAGE build arg (e.g. lem-base:bookworm for an offline build). */
  baseImage?: string;
  /** Extra build args (KEY=VALUE already split). */
  buildArgs?: Record<string, string>;
  noCache?: boolean;
  composeFiles?: string[];
  engine?: Engine;
  io?: CliIo;
}

export function backendServiceMap(env: NodeJS.ProcessEnv = process.env): Record<BackendName, string> {
  return { ...DEFAULT_SERVICES, calibration: env['LEM_CALIBRATION_SERVICE'] ?? DEFAULT_SERVICES.calibration };
}

function loadProject(files: string[] | undefined): ComposeProject {
  return loadCompose(files ?? defaultComposeFiles(packageRoot()));
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export async function imagesBuild(opts: ImagesBuildOptions): Promise<number> {
  const io = opts.io ?? processIo;
  // With --json, stdout carries only the JSON document; progress goes to stderr.
  const progress = opts.json ? io.err : io.out;
  let project: ComposeProject;
  let engine: Engine;
  try {
    project = loadProject(opts.composeFiles);
    engine = opts.engine ?? connectEngine();
    await engineVersion(engine);
  } catch (err) {
    io.err(`lem images build: ${errorText(err)}`);
    return err instanceof LemError ? err.exitCode : EXIT_FAILED_RUNS;
  }
  const names = opts.backends.length > 0 ? opts.backends : [...BACKENDS];
  const { services, unknown } = servicesFor(names, backendServiceMap(), Object.keys(project.services));
  if (unknown.length > 0) {
    io.err(`lem images build: unknown backend ${unknown.join(', ')}; expected one of ${BACKENDS.join(', ')} (or a service: ${Object.keys(project.services).join(', ')})`);
    return EXIT_USAGE;
  }
  const missing = services.filter((s) => !project.services[s]);
  if (missing.length > 0) {
    io.err(`lem images build: service ${missing.join(', ')} is not in ${project.files.join(', ')}`);
    return EXIT_USAGE;
  }

  const results: (BuildOutcome & { service: string })[] = [];
  for (const name of services) {
    const svc = project.services[name];
    if (!svc) continue;
    const base = opts.baseImage ?? svc.build?.args['BASE_IMAGE'] ?? '(Dockerfile default)';
    progress(`==> building ${svc.image} (service ${name}) on ${base}`);
    const r = await buildServiceImage(engine.docker, svc, {
      ...(opts.baseImage ? { baseImage: opts.baseImage } : {}),
      ...(opts.buildArgs ? { buildArgs: opts.buildArgs } : {}),
      ...(opts.noCache ? { noCache: true } : {}),
      onLine: (l) => progress(`[${name}] ${l}`),
    });
    results.push({ ...r, service: name });
    if (r.error) {
      progress(`==> ${svc.image}: FAILED after ${r.seconds.toFixed(1)} s: ${r.error}`);
      if (/pull access denied|not found|manifest unknown|dial tcp|lookup .*: no such host|TLS handshake/i.test(r.error)) {
        progress(`    the base image could not be pulled; on an offline host build a local base (see .ci/docker-setup.sh) and pass --base-image`);
      }
    } else {
      progress(`==> ${svc.image}: built in ${r.seconds.toFixed(1)} s (${(r.imageId ?? '').replace(/^sha256:/, '').slice(0, 12)})`);
    }
  }
  const ok = results.every((r) => r.error === null);
  if (opts.json) {
    io.out(
      JSON.stringify(jsonDocument('images.build', {
        ok,
        engine: engine.endpoint.description,
        images: results.map((r) => ({ service: r.service, image: r.image, image_id: r.imageId, seconds: Math.round(r.seconds * 10) / 10, error: r.error })),
      })),
    );
  }
  return ok ? EXIT_OK : EXIT_FAILED_RUNS;
}

export interface ImageStatus {
  backend: string;
  service: string;
  image: string;
  present: boolean;
  id: string | null;
  created: string | null;
  sizeBytes: number | null;
}

/** Which backend images the engine has. */
export async function imageStatuses(engine: Engine, project: ComposeProject): Promise<ImageStatus[]> {
  const map = backendServiceMap();
  const out: ImageStatus[] = [];
  for (const backend of BACKENDS) {
    const service = map[backend];
    const image = project.services[service]?.image ?? `${project.name}-${service}`;
    try {
      const info = await engine.docker.getImage(image).inspect();
      out.push({ backend, service, image, present: true, id: info.Id, created: info.Created, sizeBytes: info.Size });
    } catch (err) {
      if (statusCode(err) !== 404) throw err;
      out.push({ backend, service, image, present: false, id: null, created: null, sizeBytes: null });
    }
  }
  return out;
}

export async function imagesList(opts: { json: boolean; composeFiles?: string[]; engine?: Engine; io?: CliIo }): Promise<number> {
  const io = opts.io ?? processIo;
  let statuses: ImageStatus[];
  try {
    const project = loadProject(opts.composeFiles);
    const engine = opts.engine ?? connectEngine();
    await engineVersion(engine);
    statuses = await imageStatuses(engine, project);
  } catch (err) {
    io.err(`lem images ls: ${errorText(err)}`);
    return err instanceof LemError ? err.exitCode : EXIT_FAILED_RUNS;
  }
  if (opts.json) {
    io.out(JSON.stringify(jsonDocument('images.ls', { images: statuses.map((s) => ({ backend: s.backend, service: s.service, image: s.image, present: s.present, id: s.id, created: s.created, size_bytes: s.sizeBytes })) })));
    return EXIT_OK;
  }
  for (const s of statuses) {
    const detail = s.present
      ? `${(s.id ?? '').replace(/^sha256:/, '').slice(0, 12)}  ${((s.sizeBytes ?? 0) / 1e6).toFixed(0)} MB  ${s.created ?? ''}`
      : `missing (lem images build ${s.backend})`;
    io.out(`${s.backend.padEnd(12)} ${s.image.padEnd(16)} ${detail}`);
  }
  return EXIT_OK;
}
