/**
 * Building the backend images through the engine API (no docker CLI needed).
 *
 * The build context sent to the engine is a tar of only what the Dockerfile copies (its COPY/ADD
 * sources, plus the Dockerfile), so node_modules, .git and run state never travel. When a source
 * cannot be resolved statically (globs, URLs), the whole context goes, minus the usual junk and
 * .dockerignore patterns.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, normalize, relative } from 'node:path';
import type { Readable } from 'node:stream';
import type Docker from 'dockerode';
import { execa } from 'execa';
import type { BackendName } from '../../contract/backends.js';
import type { ComposeService } from './compose.js';
import { describeError } from './engine.js';

/** Paths never sent in a whole-context build. */
const ALWAYS_EXCLUDE = ['.git', 'node_modules', 'dist', 'state', '__pycache__', '*.pyc', '.venv'];

/**
 * The context-relative paths a Dockerfile copies from the build context, or null when they cannot
 * be known statically (then the whole context is sent).
 */
export function dockerfileSources(dockerfile: string): string[] | null {
  const logical = dockerfile.replace(/\\\r?\n/g, ' ').split(/\r?\n/);
  const out = new Set<string>();
  for (const raw of logical) {
    const line = raw.trim();
    const m = /^(COPY|ADD)\s+(.*)$/i.exec(line);
    if (!m) continue;
    let rest = (m[2] ?? '').trim();
    let args: string[];
    if (rest.startsWith('[')) {
      try {
        args = JSON.parse(rest) as string[];
      } catch {
        return null;
      }
    } else {
      const flags: string[] = [];
      while (rest.startsWith('--')) {
        const sp = rest.search(/\s/);
        flags.push(sp < 0 ? rest : rest.slice(0, sp));
        rest = sp < 0 ? '' : rest.slice(sp).trim();
      }
      if (flags.some((f) => f.startsWith('--from'))) continue; // from another stage or image
      args = rest.split(/\s+/).filter(Boolean);
    }
    if (args.length < 2) return null;
    for (const src of args.slice(0, -1)) {
      if (/[*?[\]]/.test(src) || /^[a-z]+:\/\//i.test(src) || src.includes('$')) return null;
      const n = normalize(src).replace(/^\.\/+/, '').replace(/\/+$/, '');
      if (n === '' || n === '.' || n.startsWith('..')) return null;
      out.add(n);
    }
  }
  return [...out];
}

function dockerignorePatterns(context: string): string[] {
  const f = join(context, '.dockerignore');
  if (!existsSync(f)) return [];
  return readFileSync(f, 'utf8')
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#') && !l.startsWith('!'));
}

/** A tar stream of the build context for `service` (and a promise for tar's own success). */
export function contextTar(build: NonNullable<ComposeService['build']>): { stream: Readable; done: Promise<void>; files: string[] | null } {
  const dockerfilePath = join(build.context, build.dockerfile);
  const sources = dockerfileSources(readFileSync(dockerfilePath, 'utf8'));
  const excludes = ['__pycache__', '*.pyc'].map((e) => `--exclude=${e}`);
  let args: string[];
  if (sources) {
    const dockerfileRel = relative(build.context, dockerfilePath);
    args = ['-c', ...excludes, '-f', '-', dockerfileRel, ...sources.filter((s) => s !== dockerfileRel)];
  } else {
    const more = [...ALWAYS_EXCLUDE, ...dockerignorePatterns(build.context)].map((e) => `--exclude=${e}`);
    args = ['-c', ...excludes, ...more, '-f', '-', '.'];
  }
  const child = execa('tar', args, { cwd: build.context, buffer: false, stdout: 'pipe', stderr: 'pipe', stdin: 'ignore' });
  const done = (async () => {
    try {
      await child;
    } catch (err) {
      const e = err as { stderr?: unknown; shortMessage?: unknown };
      throw new Error(`cannot pack the build context ${build.context}: ${typeof e.stderr === 'string' && e.stderr ? e.stderr.trim() : String(e.shortMessage ?? err)}`);
    }
  })();
  return { stream: child.stdout as Readable, done, files: sources };
}

export interface BuildProgress {
  /** One human line: a Dockerfile step, a pull status, a message. */
  line: string;
}

export interface BuildOutcome {
  image: string;
  imageId: string | null;
  seconds: number;
  error: string | null;
}

interface BuildEvent {
  stream?: string;
  status?: string;
  id?: string;
  progress?: string;
  error?: string;
  errorDetail?: { message?: string };
  aux?: { ID?: string };
}

/** Builds `service`'s image (tagged service.image), reporting progress lines. Never throws. */
export async function buildServiceImage(
  docker: Docker,
  service: ComposeService,
  opts: { baseImage?: string; buildArgs?: Record<string, string>; onLine?: (line: string) => void; noCache?: boolean } = {},
): Promise<BuildOutcome> {
  const t0 = Date.now();
  const onLine = opts.onLine ?? (() => undefined);
  const result = (imageId: string | null, error: string | null): BuildOutcome => ({ image: service.image, imageId, seconds: (Date.now() - t0) / 1000, error });
  if (!service.build) return result(null, `service ${service.name} has no build section in the compose file`);
  const build = service.build;
  if (!existsSync(join(build.context, build.dockerfile))) {
    return result(null, `Dockerfile ${join(build.context, build.dockerfile)} does not exist`);
  }
  const buildargs: Record<string, string> = { ...build.args, ...opts.buildArgs };
  if (opts.baseImage) buildargs['BASE_IMAGE'] = opts.baseImage;

  let tar: ReturnType<typeof contextTar>;
  try {
    tar = contextTar(build);
  } catch (err) {
    return result(null, (err as Error).message);
  }
  let imageId: string | null = null;
  let error: string | null = null;
  let lastStatus = '';
  try {
    const stream = await docker.buildImage(tar.stream, {
      t: service.image,
      dockerfile: build.dockerfile,
      buildargs,
      rm: true,
      forcerm: true,
      ...(opts.noCache ? { nocache: true } : {}),
      labels: { 'lem.service': service.name },
    });
    await new Promise<void>((resolve) => {
      docker.modem.followProgress(
        stream,
        (err: Error | null) => {
          if (err && !error) error = describeError(err);
          resolve();
        },
        (ev: BuildEvent) => {
          if (ev.error || ev.errorDetail?.message) {
            error = (ev.errorDetail?.message ?? ev.error ?? 'build failed').trim();
            onLine(`error: ${error}`);
          } else if (ev.stream !== undefined) {
            for (const l of ev.stream.split('\n')) {
              const t = l.trimEnd();
              if (t.trim() !== '') onLine(t);
            }
          } else if (ev.status !== undefined) {
            const s = `${ev.id ? `${ev.id}: ` : ''}${ev.status}`;
            if (s !== lastStatus) onLine(s); // pull progress bars would flood the terminal
            lastStatus = s;
          }
          if (ev.aux?.ID) imageId = ev.aux.ID;
        },
      );
    });
    await tar.done;
  } catch (err) {
    error ??= describeError(err);
  }
  if (!error && !imageId) {
    try {
      imageId = (await docker.getImage(service.image).inspect()).Id;
    } catch (err) {
      error = `the build finished but ${service.image} is not there: ${describeError(err)}`;
    }
  }
  return result(error ? null : imageId, error);
}

/** Which services the given backends (or service names) need, deduplicated, in order. */
export function servicesFor(names: readonly string[], backendToService: Record<BackendName, string>, known: readonly string[]): { services: string[]; unknown: string[] } {
  const services: string[] = [];
  const unknown: string[] = [];
  for (const n of names) {
    const svc = (backendToService as Record<string, string | undefined>)[n] ?? (known.includes(n) ? n : undefined);
    if (svc === undefined) unknown.push(n);
    else if (!services.includes(svc)) services.push(svc);
  }
  return { services, unknown };
}
