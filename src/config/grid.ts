/**
 * Backend-aware grid expansion: base_config × vary as a cartesian product, where a backend is only
 * crossed with the parameters that exist for it. A combination that breaks a backend's rules is
 * dropped with a visible note; a value of the wrong type is an error at its place in the file.
 */
import { z } from 'zod';
import { axisApplies, BACKEND_REGISTRY, BACKEND_SECTION, isBackendName, LLM_ONLY_FIELDS } from '../contract/backends.js';
import { ExperimentConfig } from './experiment.js';

export interface GridCombo {
  config: ExperimentConfig;
  /** The varied values that produced it, for names and notes. */
  assignment: Record<string, unknown>;
}

export interface GridFailure {
  /** The vary key whose value is wrong, or null when the base config is at fault. */
  key: string | null;
  valueIndex: number | null;
  error: z.ZodError;
}

export interface GridExpansion {
  combos: GridCombo[];
  notes: string[];
}

const SECTIONS = new Set<string>(Object.values(BACKEND_SECTION));
const LLM_FIELDS = new Set<string>(LLM_ONLY_FIELDS);

function clone<T>(v: T): T {
  return structuredClone(v);
}

function setPath(obj: Record<string, unknown>, dotted: string, value: unknown): void {
  const parts = dotted.split('.');
  let cur: Record<string, unknown> = obj;
  for (const p of parts.slice(0, -1)) {
    const next = cur[p];
    if (next === null || typeof next !== 'object' || Array.isArray(next)) cur[p] = {};
    cur = cur[p] as Record<string, unknown>;
  }
  cur[parts[parts.length - 1] as string] = value;
}

/** Whether a vary key applies to a backend (the registry says; an unknown backend fails later, at its parse). */
function appliesTo(key: string, backend: string): boolean {
  return isBackendName(backend) ? axisApplies(key, backend) : true;
}

/** The combinations one at a time (an odometer over the value indices), never all at once in memory. */
function* product(keys: readonly string[], vary: Record<string, readonly unknown[]>): Generator<Array<[string, number]>> {
  const sizes = keys.map((k) => (vary[k] ?? []).length);
  if (sizes.some((n) => n === 0)) return;
  const idx = keys.map(() => 0);
  for (;;) {
    yield keys.map((k, j) => [k, idx[j] as number]);
    let j = keys.length - 1;
    while (j >= 0 && (idx[j] as number) + 1 >= (sizes[j] as number)) idx[j--] = 0;
    if (j < 0) return;
    idx[j] = (idx[j] as number) + 1;
  }
}

/**
 * How many combinations the grid expands to, counted arithmetically (nothing is built), before
 * dropping invalid ones and duplicates: an upper bound on the experiments.
 */
export function countGrid(base: Record<string, unknown>, vary: Record<string, readonly unknown[]>): number {
  const backendValues = vary['backend'] ?? [base['backend']];
  const otherKeys = Object.keys(vary).filter((k) => k !== 'backend');
  let total = 0;
  for (const backend of backendValues) {
    const b = String(backend);
    total += otherKeys.filter((k) => appliesTo(k, b)).reduce((acc, k) => acc * (vary[k] ?? []).length, 1);
  }
  return total;
}

/**
 * Expands the grid. Calls `fail` for each hard error (once per wrong value or base field, with the
 * one issue it blames; it may throw to stop at the first), skipping that combination; returns the
 * valid combos and the notes on what was not crossed or was dropped.
 */
export function expandGrid(
  base: Record<string, unknown>,
  vary: Record<string, readonly unknown[]>,
  fail: (f: GridFailure) => void,
  /** Called every 1000 combinations with how many were built so far. */
  onProgress?: (built: number) => void,
): GridExpansion {
  let built = 0;
  const notes: string[] = [];
  const backendValues = vary['backend'] ?? [base['backend']];
  const otherKeys = Object.keys(vary).filter((k) => k !== 'backend');
  const combos: GridCombo[] = [];

  backendValues.forEach((backend, backendIndex) => {
    if (!isBackendName(backend)) {
      const probe = ExperimentConfig.safeParse({ ...base, backend }, { reportInput: true });
      if (!probe.success) {
        fail({ key: vary['backend'] ? 'backend' : null, valueIndex: vary['backend'] ? backendIndex : null, error: probe.error });
        return;
      }
    }
    const b = String(backend);
    const keys = otherKeys.filter((k) => appliesTo(k, b));
    const skipped = otherKeys.filter((k) => !appliesTo(k, b));
    if (skipped.length > 0) notes.push(`backend ${b}: not crossed with ${skipped.join(', ')} (not a ${b} parameter)`);

    const start = clone(base);
    start['backend'] = b;
    const own = isBackendName(b) ? BACKEND_REGISTRY[b].section : null;
    for (const s of SECTIONS) {
      if (s !== own && s in start) {
        delete start[s];
        if (vary['backend']) notes.push(`backend ${b}: base_config section '${s}' ignored`);
      }
    }
    if (isBackendName(b) && BACKEND_REGISTRY[b].kind !== 'llm') for (const f of LLM_FIELDS) delete start[f];

    for (const combo of product(keys, vary)) {
      const raw = clone(start);
      const assignment: Record<string, unknown> = vary['backend'] ? { backend: b } : {};
      for (const [k, i] of combo) {
        const value = (vary[k] as readonly unknown[])[i];
        setPath(raw, k, clone(value));
        assignment[k] = value;
      }
      const parsed = ExperimentConfig.safeParse(raw, { reportInput: true });
      if (++built % 1000 === 0) onProgress?.(built);
      if (parsed.success) {
        combos.push({ config: parsed.data, assignment });
        continue;
      }
      const hard = parsed.error.issues.filter((i) => i.code !== 'custom');
      for (const issue of hard) {
        const unknownKey = issue.code === 'unrecognized_keys' ? issue.keys[0] : undefined;
        const path = [...issue.path, ...(unknownKey !== undefined ? [unknownKey] : [])].join('.');
        const culprit = combo.find(([k]) => path === k || path.startsWith(`${k}.`) || k.startsWith(`${path}.`));
        fail({
          key: culprit ? culprit[0] : null,
          valueIndex: culprit && unknownKey === undefined ? culprit[1] : null,
          error: new z.ZodError([issue]),
        });
      }
      if (hard.length > 0) continue;
      const why = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
      notes.push(`dropped ${formatAssignment(assignment)}: ${why}`);
    }
  });
  return { combos, notes };
}

export function formatAssignment(a: Record<string, unknown>): string {
  const parts = Object.entries(a).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
  return parts.length > 0 ? parts.join(' ') : '(base)';
}
