/**
 * The engine parameters a backend types, generated from its zod section (src/config/sections/*.ts)
 * plus the shared LLM fields that reach every engine, and the parameter-coverage view of the
 * catalogue the worker's audit uses (images/worker/lem_worker/data/engine_params.yaml).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { Precision, PytorchExperiment, Quantization, Reasoning, TensorrtExperiment, VllmExperiment } from './experiment.js';
import { PytorchSection } from './sections/pytorch.js';
import { TensorrtSection } from './sections/tensorrt.js';
import { VllmSection } from './sections/vllm.js';
import { workerDir } from '../util/paths.js';

export const ENGINE_BACKENDS = ['pytorch', 'vllm', 'tensorrt'] as const;
export type EngineBackend = (typeof ENGINE_BACKENDS)[number];

const SECTIONS: Record<EngineBackend, z.ZodType> = { pytorch: PytorchSection, vllm: VllmSection, tensorrt: TensorrtSection };
const SHARED: Record<string, z.ZodType> = { precision: Precision, quantization: Quantization, reasoning: Reasoning };
const EXPERIMENTS: Record<EngineBackend, z.ZodType> = { pytorch: PytorchExperiment, vllm: VllmExperiment, tensorrt: TensorrtExperiment };

export interface ParamRow {
  /** Dotted config path; also the grid axis (`vary:` key) that varies it. */
  field: string;
  type: string;
  default: unknown;
  description: string;
  /** The section's own field (true) or a shared LLM field. */
  section: boolean;
}

type Js = Record<string, unknown>;

function typeOf(s: Js): string {
  if (Array.isArray(s['enum'])) return (s['enum'] as unknown[]).map((v) => JSON.stringify(v)).join(' | ');
  if ('const' in s) return JSON.stringify(s['const']);
  const alts = (s['anyOf'] ?? s['oneOf']) as Js[] | undefined;
  if (Array.isArray(alts)) return alts.map(typeOf).join(' | ');
  const t = s['type'];
  if (t === 'integer' || t === 'number') {
    const b: string[] = [];
    if (typeof s['exclusiveMinimum'] === 'number') b.push(`> ${s['exclusiveMinimum']}`);
    if (typeof s['minimum'] === 'number') b.push(`>= ${s['minimum']}`);
    if (typeof s['maximum'] === 'number' && s['maximum'] !== Number.MAX_SAFE_INTEGER) b.push(`<= ${s['maximum']}`);
    return [t, ...b].join(' ');
  }
  if (t === 'array') return `list of ${typeOf((s['items'] ?? {}) as Js)}`;
  if (t === 'object') return s['properties'] ? `{${Object.keys(s['properties'] as Js).join(', ')}}` : 'map';
  return typeof t === 'string' ? t : 'any';
}

function rows(prefix: string, schema: Js, section: boolean, out: ParamRow[]): void {
  const props = (schema['properties'] ?? {}) as Record<string, Js>;
  for (const [k, s] of Object.entries(props)) {
    const field = prefix === '' ? k : `${prefix}.${k}`;
    const inner = s['type'] === 'object' && s['properties'] ? s : null;
    out.push({ field, type: typeOf(s), default: s['default'] ?? null, description: String(s['description'] ?? ''), section });
    if (inner) rows(field, inner, section, out);
  }
}

/** Every typed parameter of `backend`, section first, with its type, default and grid axis. */
export function backendParams(backend: EngineBackend): ParamRow[] {
  const out: ParamRow[] = [];
  const js = (t: z.ZodType): Js => z.toJSONSchema(t, { io: 'input', unrepresentable: 'any' }) as Js;
  rows(backend, js(SECTIONS[backend]), true, out);
  for (const [name, t] of Object.entries(SHARED)) {
    const s = js(t);
    if (s['properties']) rows(name, s, false, out);
    else out.push({ field: name, type: typeOf(s), default: s['default'] ?? null, description: String(s['description'] ?? ''), section: false });
  }
  return out;
}

export interface CatalogueEntry {
  classes: string[];
  typed: Record<string, string>;
  set_by_lem: string[];
  left: string[];
  energy_relevant: string[];
}

export function engineCatalogue(file = join(workerDir(), 'lem_worker', 'data', 'engine_params.yaml')): Record<EngineBackend, CatalogueEntry> {
  return parseYaml(readFileSync(file, 'utf8')) as Record<EngineBackend, CatalogueEntry>;
}

export interface CoverageView {
  backend: EngineBackend;
  classes: string[];
  typed: Array<{ engine: string; field: string; known: boolean }>;
  setByLem: string[];
  left: string[];
  energyRelevant: number;
  covered: number;
  coverage: number | null;
  notCovered: string[];
}

/**
 * The catalogue's view of `backend` (no engine needed): which engine parameters are typed and by which
 * field (`known` is false when that field is not in the schema), set by lem, or left to extra.engine_args.
 */
export function catalogueCoverage(backend: EngineBackend, cat = engineCatalogue()): CoverageView {
  const c = cat[backend];
  const all: ParamRow[] = [];
  rows('', z.toJSONSchema(EXPERIMENTS[backend], { io: 'input', unrepresentable: 'any' }) as Js, false, all);
  const fields = new Set(all.map((r) => r.field));
  const known = (f: string): boolean => fields.has(f);
  const covered = c.energy_relevant.filter((e) => e in c.typed || c.set_by_lem.includes(e));
  return {
    backend,
    classes: c.classes,
    typed: Object.entries(c.typed).map(([engine, field]) => ({ engine, field, known: known(field) })),
    setByLem: c.set_by_lem,
    left: c.left,
    energyRelevant: c.energy_relevant.length,
    covered: covered.length,
    coverage: c.energy_relevant.length ? covered.length / c.energy_relevant.length : null,
    notCovered: c.energy_relevant.filter((e) => !covered.includes(e)),
  };
}
