/**
 * Every field name the config and campaign schemas know, for "did you mean" on a misspelt key.
 * Read from the zod schemas themselves (through their JSON Schema), so it never drifts from them.
 */
import { z } from 'zod';
import { CampaignFile } from './campaign.js';
import { ExperimentConfig } from './experiment.js';

let cached: readonly string[] | null = null;

function collect(node: unknown, into: Set<string>): void {
  if (Array.isArray(node)) {
    for (const n of node) collect(n, into);
    return;
  }
  if (node === null || typeof node !== 'object') return;
  for (const [k, v] of Object.entries(node)) {
    if (k === 'properties' && v !== null && typeof v === 'object' && !Array.isArray(v)) for (const name of Object.keys(v)) into.add(name);
    collect(v, into);
  }
}

export function knownFields(): readonly string[] {
  if (cached) return cached;
  const names = new Set<string>();
  for (const s of [CampaignFile, ExperimentConfig]) collect(z.toJSONSchema(s, { io: 'input', unrepresentable: 'any' }), names);
  cached = [...names].sort();
  return cached;
}

/** Optimal string alignment distance (Levenshtein plus adjacent transpositions). */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  const at = (i: number, j: number): number => d[i]?.[j] ?? Number.POSITIVE_INFINITY;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, at(i - 2, j - 2) + 1);
      (d[i] as number[])[j] = v;
    }
  }
  return at(a.length, b.length);
}

/** The known field closest to `key`, when it is close enough to be a typo; else null. */
export function didYouMean(key: string, candidates: readonly string[] = knownFields()): string | null {
  const limit = key.length <= 4 ? 1 : key.length <= 8 ? 2 : 3;
  let best: string | null = null;
  let bestD = limit + 1;
  for (const c of candidates) {
    if (c === key) continue;
    const dist = editDistance(key.toLowerCase(), c.toLowerCase());
    // On a tie, a name of the same length (a transposition, `modle`) beats one letter added or dropped.
    if (dist < bestD || (dist === bestD && best !== null && c.length === key.length && best.length !== key.length)) {
      best = c;
      bestD = dist;
    }
  }
  return best;
}

let experimentKeys: ReadonlySet<string> | null = null;

/** The top-level field names of an experiment config (every backend's variant), from its schema. */
export function experimentTopLevelFields(): ReadonlySet<string> {
  if (experimentKeys) return experimentKeys;
  const names = new Set<string>();
  const schema = z.toJSONSchema(ExperimentConfig, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  const variants = [schema, ...((schema['oneOf'] ?? schema['anyOf'] ?? []) as Record<string, unknown>[])];
  for (const v of variants) {
    const props = v['properties'];
    if (props !== null && typeof props === 'object') for (const k of Object.keys(props)) names.add(k);
  }
  experimentKeys = names;
  return names;
}
