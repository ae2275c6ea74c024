/** What a config conversion produces: a lem campaign (plain data), what could not be mapped and why. */

export interface Unmapped {
  /** Where in the output the comment goes: the mapping the key would belong to ([] = top of file). */
  near: string[];
  /** The source key, dotted, as written in the source file. */
  key: string;
  value: unknown;
  reason: string;
}

export interface Conversion {
  /** What the source is, e.g. "LLenergyMeasure v1 campaign". */
  kind: string;
  /** Campaign-level fields (campaign_name, cycles, structure, seed, thermal_gap, runtime, force_cold_start). */
  settings: Record<string, unknown>;
  /** Either a base config with a vary grid, or an explicit list of experiment configs. */
  base: Record<string, unknown> | null;
  vary: Record<string, unknown[]> | null;
  configs: Array<Record<string, unknown>> | null;
  unmapped: Unmapped[];
  warnings: string[];
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

export function setPath(obj: Record<string, unknown>, dotted: string, value: unknown): void {
  const parts = dotted.split('.');
  let cur = obj;
  for (const p of parts.slice(0, -1)) {
    if (!isRecord(cur[p])) cur[p] = {};
    cur = cur[p] as Record<string, unknown>;
  }
  cur[parts[parts.length - 1] as string] = value;
}

export function emptyConversion(kind: string): Conversion {
  return { kind, settings: {}, base: null, vary: null, configs: null, unmapped: [], warnings: [] };
}

/** A campaign name lem accepts (letters, digits, dot, dash, underscore). */
export function campaignName(raw: unknown, fallback: string): string {
  const s = typeof raw === 'string' ? raw : fallback;
  const cleaned = s.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[^A-Za-z0-9]+/, '');
  return cleaned.length > 0 ? cleaned : 'imported';
}
