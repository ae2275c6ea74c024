/**
 * `lem backends` (alias `list-backends`): each backend, what it needs, and whether it is ready here:
 *   local runtime   the engine packages importable by the local Python ($LEM_PYTHON, default python3)
 *   docker runtime  the backend's image present on the engine (when the engine answers)
 *   GPUs            NVIDIA GPUs seen by nvidia-smi (required by vllm and tensorrt; optional for pytorch)
 * and which backend BENCHMARK_BACKEND selects for configs that leave `backend` out. Probes are behind
 * `BackendProbes` so the readiness logic is tested with chosen answers. Always exits 0 (a report);
 * `--json` prints one document.
 */
import { execa } from 'execa';
import { BACKEND_ENV, backendFromEnv, ENV_BACKENDS } from '../../config/backend-env.js';
import { BACKEND_REGISTRY, BACKENDS, type BackendName, type GpuNeed } from '../../contract/backends.js';
import { defaultComposeFiles, loadCompose } from '../../runtime/docker/compose.js';
import { connectEngine, describeError } from '../../runtime/docker/engine.js';
import { EXIT_OK } from '../../util/errors.js';
import { packageRoot } from '../../util/paths.js';
import { printJson, type CliContext } from '../context.js';
import { table } from '../format.js';
import { hostGpus } from './doctor.js';
import { imageStatuses } from './images.js';

interface Need {
  python_packages: string[];
  optional_packages: string[];
  gpu: GpuNeed;
}

/** What each backend needs, from the backend registry, in this command's JSON shape. */
export const NEEDS = Object.fromEntries(
  BACKENDS.map((b) => {
    const s = BACKEND_REGISTRY[b];
    return [b, { python_packages: [...s.pythonPackages], optional_packages: [...s.optionalPackages], gpu: s.gpu }];
  }),
) as Readonly<Record<BackendName, Need>>;

export interface BackendProbes {
  /** Which modules the local Python can import; null (with a reason) when that Python does not run. */
  python(modules: readonly string[]): Promise<{ python: string; found: Record<string, boolean> } | { python: string; error: string }>;
  /** Image presence per backend; null (with a reason) when the engine does not answer. */
  images(): Promise<{ endpoint: string; present: Record<string, { image: string; present: boolean }> } | { error: string }>;
  gpus(): Promise<string[] | null>;
}

export interface BackendReadiness {
  name: BackendName;
  needs: Need & { image: string | null };
  local: { ready: boolean; missing: string[]; packages: Record<string, boolean> };
  docker: { ready: boolean | null; image: string | null; image_present: boolean | null };
  gpu_ok: boolean;
}

export interface BackendsReport {
  python: string;
  python_error: string | null;
  engine: string | null;
  engine_error: string | null;
  gpus: string[];
  env: { variable: string; value: string | null; selects: string | null; error: string | null; valid_values: string[] };
  backends: BackendReadiness[];
}

export async function backendsReport(probes: BackendProbes, env: NodeJS.ProcessEnv): Promise<BackendsReport> {
  const modules = [...new Set(BACKENDS.flatMap((b) => [...NEEDS[b].python_packages, ...NEEDS[b].optional_packages]))];
  const [py, imgs, gpus] = await Promise.all([probes.python(modules), probes.images(), probes.gpus()]);
  const seen = gpus ?? [];
  const found = 'found' in py ? py.found : {};
  let selects: string | null = null;
  let envError: string | null = null;
  try {
    const c = backendFromEnv(env);
    selects = c === null ? null : c === 'optimum' ? 'pytorch (energy_star settings)' : c;
  } catch (e) {
    envError = e instanceof Error ? e.message : String(e);
  }
  const backends = BACKENDS.map((name): BackendReadiness => {
    const need = NEEDS[name];
    const gpuOk = need.gpu !== 'required' || seen.length > 0;
    const missing = 'found' in py ? need.python_packages.filter((m) => !found[m]) : ['python'];
    const packages = Object.fromEntries([...need.python_packages, ...need.optional_packages].map((m) => [m, Boolean(found[m])]));
    const img = 'present' in imgs ? imgs.present[name] : undefined;
    return {
      name,
      needs: { ...need, image: img?.image ?? null },
      local: { ready: missing.length === 0 && gpuOk, missing, packages },
      docker: { ready: img ? img.present && gpuOk : null, image: img?.image ?? null, image_present: img ? img.present : null },
      gpu_ok: gpuOk,
    };
  });
  return {
    python: py.python,
    python_error: 'error' in py ? py.error : null,
    engine: 'endpoint' in imgs ? imgs.endpoint : null,
    engine_error: 'error' in imgs ? imgs.error : null,
    gpus: seen,
    env: { variable: BACKEND_ENV, value: env[BACKEND_ENV] ?? null, selects, error: envError, valid_values: [...ENV_BACKENDS] },
    backends,
  };
}

/** The real probes: the local Python, the Docker engine and nvidia-smi. */
export function systemProbes(env: NodeJS.ProcessEnv): BackendProbes {
  return {
    async python(modules) {
      const python = env['LEM_PYTHON'] ?? 'python3';
      const script = `import importlib.util, json, sys\nprint(json.dumps({m: importlib.util.find_spec(m) is not None for m in sys.argv[1:]}))`;
      try {
        const r = await execa(python, ['-c', script, ...modules], { timeout: 30_000, reject: false });
        if (r.exitCode !== 0) return { python, error: `exit ${String(r.exitCode)}: ${String(r.stderr).split('\n').slice(-1)[0] ?? ''}` };
        return { python, found: JSON.parse(String(r.stdout)) as Record<string, boolean> };
      } catch (e) {
        return { python, error: e instanceof Error ? e.message.split('\n')[0] ?? 'failed' : String(e) };
      }
    },
    async images() {
      try {
        const engine = connectEngine(env);
        await Promise.race([engine.docker.version(), new Promise((_, reject) => setTimeout(() => reject(new Error('no answer within 5 s')), 5000).unref())]);
        const project = loadCompose(defaultComposeFiles(packageRoot(), env), { env });
        const present: Record<string, { image: string; present: boolean }> = {};
        for (const s of await imageStatuses(engine, project)) present[s.backend] = { image: s.image, present: s.present };
        return { endpoint: engine.endpoint.description, present };
      } catch (e) {
        return { error: describeError(e) };
      }
    },
    gpus: hostGpus,
  };
}

const yesNo = (v: boolean | null): string => (v === null ? '?' : v ? 'yes' : 'no');

export async function backends(ctx: CliContext, o: { json?: boolean }, probes: BackendProbes = systemProbes(process.env), env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const r = await backendsReport(probes, env);
  if (o.json) {
    printJson(ctx, 'backends', { ...r });
    return EXIT_OK;
  }
  ctx.out(
    table(
      ['backend', 'needs', 'GPU', 'local: ready', 'missing', 'docker: image', 'present', 'ready'],
      r.backends.map((b) => [
        b.name,
        b.needs.python_packages.join(', ') || '(python only)',
        b.needs.gpu,
        yesNo(b.local.ready),
        b.local.missing.join(', ') || '—',
        b.docker.image ?? '—',
        yesNo(b.docker.image_present),
        yesNo(b.docker.ready),
      ]),
    ),
  );
  ctx.out(`local python: ${r.python}${r.python_error ? ` (does not run: ${r.python_error})` : ''}`);
  ctx.out(`docker engine: ${r.engine ?? `not reachable (${r.engine_error ?? 'unknown'})`}`);
  ctx.out(`GPUs: ${r.gpus.length > 0 ? r.gpus.join('; ') : 'none seen (nvidia-smi)'}`);
  ctx.out(
    r.env.error
      ? `${r.env.variable}: ${r.env.error}`
      : `${r.env.variable}: ${r.env.value ? `${r.env.value} → configs without a backend use ${r.env.selects}` : `unset (configs must name their backend; values: ${r.env.valid_values.join(', ')})`}`,
  );
  return EXIT_OK;
}
