/**
 * Cross-language agreement: every shipped config (campaigns/, the campaign fixtures, the valid
 * malformed-suite fixture, the energy_star preset and each backend's bare default), resolved by
 * TypeScript into experiment configs, is loaded by the Python worker's config loader to the same
 * values, defaults included. One worker process loads them all (`python3 -m lem_worker.config`).
 * And every field of the generated experiment JSON Schema is one the worker knows (`--fields`), so a
 * zod field no fixture uses yet still fails here when the worker lacks it (contract drift).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BACKEND_REGISTRY, BACKEND_SECTION, BACKENDS } from '../../src/contract/backends.js';
import { ENERGY_STAR_PRESET } from '../../src/config/backend-env.js';
import { DECODER_PRESETS, ExperimentConfig } from '../../src/config/experiment.js';
import { loadCampaign, loadExperimentFile } from '../../src/config/load.js';
import { ROOT } from '../helpers/cli.js';

const python = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

/**
 * Fields the worker parses in their own module from `exp.raw` (the shared rule for new sections such
 * as traffic), not into config.py's Experiment: their agreement is that module's test (serving:
 * images/worker/tests/test_serving.py). Name each one here when it lands; any other field the worker
 * lacks is a failure.
 */
const OWN_MODULE_FIELDS: ReadonlySet<string> = new Set<string>(['experiment.traffic', 'experiment.reasoning']);

/**
 * Backend sections: config.py's dataclass carries the fields the backends read from it; the other
 * typed fields are read from exp.raw by engine_args.py (engine parameters) and serving/settings.py
 * (vllm serving fields) and checked by their tests. Here: every field the dataclass carries agrees.
 */
const SECTIONS_PARTLY_ELSEWHERE: ReadonlySet<string> = new Set(['experiment.pytorch', 'experiment.vllm', 'experiment.tensorrt']);
type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

interface Case {
  label: string;
  /** What the worker receives: the resolved config, or (for the bare ones) the input as written. */
  sent: unknown;
  config: ExperimentConfig;
}

function shippedConfigs(): Case[] {
  const out: Case[] = [];
  const campaignFiles = [
    ...readdirSync(join(ROOT, 'campaigns')).map((f) => join(ROOT, 'campaigns', f)),
    ...readdirSync(join(ROOT, 'test/fixtures/campaigns')).map((f) => join(ROOT, 'test/fixtures/campaigns', f)),
  ].filter((f) => f.endsWith('.yaml'));
  // campaigns/serving.yaml measures a running server named by VLLM_ENDPOINT (as its header says).
  const saved = process.env['VLLM_ENDPOINT'];
  process.env['VLLM_ENDPOINT'] = 'http://127.0.0.1:8000/v1';
  try {
    for (const file of campaignFiles) {
      for (const e of loadCampaign(file).experiments) out.push({ label: `${file.slice(ROOT.length + 1)} ${e.name}`, sent: e.config, config: e.config });
    }
  } finally {
    if (saved === undefined) delete process.env['VLLM_ENDPOINT'];
    else process.env['VLLM_ENDPOINT'] = saved;
  }
  const ok = loadExperimentFile(join(ROOT, 'test/fixtures/malformed/ok.yaml'));
  out.push({ label: 'test/fixtures/malformed/ok.yaml', sent: ok, config: ok });
  const star = ExperimentConfig.parse({ ...ENERGY_STAR_PRESET, model: { id: 'org/m' } });
  out.push({ label: 'energy_star preset', sent: star, config: star });
  for (const b of BACKENDS) {
    const input = BACKEND_REGISTRY[b].kind === 'llm' ? { backend: b, model: { id: 'org/m' } } : { backend: b };
    const resolved = ExperimentConfig.parse(input);
    out.push({ label: `bare ${b}, resolved`, sent: resolved, config: resolved });
    // Unresolved: the worker's own defaults must be zod's.
    out.push({ label: `bare ${b}, as written`, sent: input, config: resolved });
  }
  for (const source of [{ source: 'file', path: '/p.jsonl' }, { source: 'synthetic', input_len: 8 }, { source: 'huggingface', dataset: 'd/s' }]) {
    const input = { backend: 'pytorch', model: { id: 'org/m' }, prompts: source };
    out.push({ label: `prompts ${source.source}, as written`, sent: input, config: ExperimentConfig.parse(input) });
  }
  return out;
}

/** Every value TypeScript resolved is the worker's value at the same place (quantization: its method). */
function disagreements(ts: Json, py: Json, path: string, out: string[]): void {
  if (ts !== null && typeof ts === 'object' && !Array.isArray(ts)) {
    if (py === null || typeof py !== 'object' || Array.isArray(py)) {
      out.push(`${path}: TypeScript has an object, the worker ${JSON.stringify(py)}`);
      return;
    }
    for (const [k, v] of Object.entries(ts)) {
      if (path === 'experiment' && k === 'quantization') {
        const method = (v as { method: Json }).method;
        if (py[k] !== method) out.push(`${path}.quantization: TypeScript ${JSON.stringify(method)}, the worker ${JSON.stringify(py[k])}`);
        continue;
      }
      if (OWN_MODULE_FIELDS.has(`${path}.${k}`)) continue;
      if (SECTIONS_PARTLY_ELSEWHERE.has(path) && !(k in py)) continue;
      if (!(k in py)) out.push(`${path}.${k}: the worker has no such field`);
      else disagreements(v, py[k] as Json, `${path}.${k}`, out);
    }
    return;
  }
  if (JSON.stringify(ts) !== JSON.stringify(py)) out.push(`${path}: TypeScript ${JSON.stringify(ts)}, the worker ${JSON.stringify(py)}`);
}

describe('TypeScript and the Python worker load the shipped configs alike', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lem-agree-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const configs = shippedConfigs();
  const files = configs.map((c, i) => {
    const file = join(dir, `${i}.json`);
    writeFileSync(file, JSON.stringify({ run: { run_id: `r${i}`, experiment_id: `e${i}`, cycle: 1, attempt: 1 }, experiment: c.sent }));
    return file;
  });

  it('covers every backend and prompt source', () => {
    expect(new Set(configs.map((c) => c.config.backend))).toEqual(new Set(BACKENDS));
    expect(new Set(configs.map((c) => ('prompts' in c.config ? c.config.prompts.source : 'none')))).toEqual(new Set(['builtin', 'file', 'synthetic', 'huggingface', 'none']));
    expect(configs.length).toBeGreaterThan(BACKENDS.length + 2);
  });

  it('every resolved value, defaults included, is the value the worker loads', () => {
    const r = spawnSync(python, ['-m', 'lem_worker.config', ...files], {
      cwd: ROOT,
      env: { ...process.env, PYTHONPATH: join(ROOT, 'images', 'worker') },
      encoding: 'utf8',
    });
    expect(r.status, r.stderr).toBe(0);
    const loaded = JSON.parse(r.stdout) as Array<{ experiment: Record<string, Json> }>;
    expect(loaded).toHaveLength(configs.length);
    const problems: string[] = [];
    configs.forEach((c, i) => {
      const py = loaded[i]?.experiment ?? {};
      const out: string[] = [];
      disagreements(c.config as unknown as Json, py, 'experiment', out);
      if ('decoder' in c.config) {
        // Fields TypeScript leaves to the preset are the preset's values in the worker.
        const preset = DECODER_PRESETS[c.config.decoder.preset] as Record<string, Json>;
        for (const [k, v] of Object.entries(preset)) {
          if (!(k in c.config.decoder)) disagreements(v, (py['decoder'] as Record<string, Json>)[k] as Json, `experiment.decoder.${k} (preset)`, out);
        }
      }
      problems.push(...out.map((p) => `${c.label}: ${p}`));
    });
    expect(problems).toEqual([]);
  });
});

interface SchemaNode {
  properties?: Record<string, SchemaNode>;
  oneOf?: SchemaNode[];
  anyOf?: SchemaNode[];
  allOf?: SchemaNode[];
}

/** Every property name at `path` (through oneOf/anyOf/allOf), and the object-valued ones' nodes by name. */
function schemaFields(node: SchemaNode, path: string, out: Map<string, SchemaNode[]>): void {
  for (const alt of [...(node.oneOf ?? []), ...(node.anyOf ?? []), ...(node.allOf ?? [])]) schemaFields(alt, path, out);
  for (const [k, child] of Object.entries(node.properties ?? {})) {
    const key = `${path}.${k}`;
    out.set(key, [...(out.get(key) ?? []), child]);
  }
}

/**
 * Contract drift: every field of the generated experiment JSON Schema (every top-level field, and
 * every field of each section outside the backend sections read partly from exp.raw and the
 * own-module sections) is one the worker's loader knows (`python3 -m lem_worker.config --fields`),
 * so a zod field the worker would reject or silently drop fails here even when no fixture uses it.
 */
function workerDrift(schema: SchemaNode, known: Record<string, string[]>): string[] {
  const top = new Map<string, SchemaNode[]>();
  schemaFields(schema, 'experiment', top);
  const problems: string[] = [];
  const knows = (section: string, k: string): boolean => (known[section] ?? []).includes(k);
  for (const [path, nodes] of top) {
    if (OWN_MODULE_FIELDS.has(path)) continue;
    if (!knows('experiment', path.slice('experiment.'.length))) problems.push(`${path}: the worker has no such field`);
    if (SECTIONS_PARTLY_ELSEWHERE.has(path)) continue;
    const fields = new Map<string, SchemaNode[]>();
    for (const n of nodes) schemaFields(n, path, fields);
    if (fields.size > 0 && known[path] === undefined) problems.push(`${path}: the worker does not list this section's fields`);
    for (const f of fields.keys()) if (known[path] !== undefined && !knows(path, f.slice(path.length + 1))) problems.push(`${f}: the worker has no such field`);
  }
  return problems;
}

describe('every experiment schema field is known to the worker (contract drift)', () => {
  const schema = JSON.parse(readFileSync(join(ROOT, 'schemas', 'experiment.schema.json'), 'utf8')) as SchemaNode;
  const r = spawnSync(python, ['-m', 'lem_worker.config', '--fields'], { cwd: ROOT, env: { ...process.env, PYTHONPATH: join(ROOT, 'images', 'worker') }, encoding: 'utf8' });
  const known = JSON.parse(r.stdout || '{}') as Record<string, string[]>;

  it('the worker lists the fields it knows, and the backend sections read elsewhere are exactly the registry\'s LLM sections', () => {
    expect(r.status, r.stderr).toBe(0);
    expect(known['experiment.measurement']).toContain('min_window_s');
    expect([...SECTIONS_PARTLY_ELSEWHERE].sort()).toEqual(BACKENDS.filter((b) => BACKEND_REGISTRY[b].kind === 'llm').map((b) => `experiment.${BACKEND_SECTION[b]}`).sort());
  });

  it('no field of schemas/experiment.schema.json is unknown to the worker', () => {
    expect(workerDrift(schema, known)).toEqual([]);
  });

  it('catches a field the worker lacks (measurement.gpus taken out of its list)', () => {
    const without = { ...known, 'experiment.measurement': (known['experiment.measurement'] ?? []).filter((f) => f !== 'gpus') };
    expect(workerDrift(schema, without)).toEqual(['experiment.measurement.gpus: the worker has no such field']);
    const noSection = { ...known, experiment: (known['experiment'] ?? []).filter((f) => f !== 'warmup') };
    expect(workerDrift(schema, noSection)).toEqual(['experiment.warmup: the worker has no such field']);
  });
});
