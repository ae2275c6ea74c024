/**
 * The reasoning-format registry (images/worker/lem_worker/data/reasoning.yaml), read on the controller
 * so a config that asks a family for what it cannot do fails at validation, not in the worker. The
 * worker's lem_worker/reasoning.py applies the same file; selection here follows the same rule: an exact
 * id in `overrides`, else the first family (file order) one of whose patterns matches (case-insensitive).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { workerDir } from '../util/paths.js';

export interface ReasoningFamily {
  name: string;
  match: string[];
  method: 'template_kwarg' | 'system' | 'prefix' | 'effort' | 'always' | 'none';
  efforts?: string[];
}

export interface ReasoningRegistry {
  families: ReasoningFamily[];
  overrides: Record<string, string>;
}

let cached: ReasoningRegistry | null = null;

export function loadReasoningRegistry(file = join(workerDir(), 'lem_worker', 'data', 'reasoning.yaml')): ReasoningRegistry {
  const doc = parseYaml(readFileSync(file, 'utf8')) as { families: Record<string, Omit<ReasoningFamily, 'name'>>; overrides?: Record<string, string> };
  return { families: Object.entries(doc.families).map(([name, f]) => ({ name, ...f })), overrides: doc.overrides ?? {} };
}

export function selectFamily(modelId: string, reg: ReasoningRegistry): ReasoningFamily | null {
  const byName = reg.overrides[modelId];
  if (byName !== undefined) return reg.families.find((f) => f.name === byName) ?? null;
  return reg.families.find((f) => f.match.some((p) => new RegExp(p, 'i').test(modelId))) ?? null;
}

/** What a `reasoning` section asks that the model's family cannot do: [field, message] pairs. */
export function reasoningProblems(modelId: string, r: { enabled?: boolean | undefined; effort?: string | undefined }, reg?: ReasoningRegistry): Array<[string, string]> {
  if (r.enabled === undefined && r.effort === undefined) return [];
  cached ??= reg ?? loadReasoningRegistry();
  const fam = selectFamily(modelId, reg ?? cached);
  if (!fam) return [['enabled', `model ${modelId} matches no family of the reasoning registry (images/worker/lem_worker/data/reasoning.yaml)`]];
  const out: Array<[string, string]> = [];
  if (fam.method === 'none' && r.enabled === true) out.push(['enabled', `${modelId} (${fam.name}) has no reasoning mode`]);
  if ((fam.method === 'always' || fam.method === 'effort') && r.enabled === false) out.push(['enabled', `${modelId} (${fam.name}) always reasons; it cannot be switched off`]);
  if (r.effort !== undefined && !(fam.efforts ?? []).includes(r.effort)) {
    out.push(['effort', fam.efforts?.length ? `'${r.effort}' is not one of ${fam.efforts.join(', ')} for ${fam.name}` : `${modelId} (${fam.name}) takes no effort level`]);
  }
  return out;
}
