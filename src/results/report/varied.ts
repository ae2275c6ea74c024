/**
 * The configuration parameters that differ between a campaign's experiments (dotted paths, e.g.
 * `pytorch.batch_size`), with each experiment's value as text: the summary table's columns.
 */
import type { ExperimentRecord } from '../aggregate.js';

export interface VariedParameters {
  /** Dotted paths whose values differ between experiments, at most `max`, in first-seen order. */
  columns: string[];
  /** Per experiment id: path → value as text ('–' when the experiment does not have it). */
  values: Map<string, Record<string, string>>;
  /** Varied paths beyond `max`, not shown. */
  omitted: number;
}

function flatten(value: unknown, prefix: string, out: Map<string, string>): void {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
    return;
  }
  out.set(prefix, typeof value === 'string' ? value : JSON.stringify(value) ?? 'null');
}

export function variedParameters(experiments: readonly ExperimentRecord[], max = 6): VariedParameters {
  const flat = experiments.map((e) => {
    const m = new Map<string, string>();
    flatten(e.config, '', m);
    m.delete('name');
    m.delete('');
    return m;
  });
  const paths: string[] = [];
  const seen = new Set<string>();
  for (const m of flat) for (const k of m.keys()) if (!seen.has(k)) (seen.add(k), paths.push(k));
  const varied = experiments.length < 2 ? [] : paths.filter((p) => new Set(flat.map((m) => m.get(p) ?? '–')).size > 1);
  const columns = varied.slice(0, max);
  const values = new Map<string, Record<string, string>>();
  experiments.forEach((e, i) => {
    const m = flat[i] as Map<string, string>;
    values.set(e.id, Object.fromEntries(columns.map((c) => [c, m.get(c) ?? '–'])));
  });
  return { columns, values, omitted: varied.length - columns.length };
}
