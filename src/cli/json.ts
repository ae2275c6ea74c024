/**
 * The `--json` interface: every document is one JSON object whose keys are snake_case and whose
 * first key is `schema: "lem.<command>/<version>"`. Within a version changes are additive only
 * (new keys may appear; none is renamed, removed or changes meaning); anything else bumps the
 * version. Internal TypeScript objects keep their camelCase fields: the conversion happens here,
 * at the CLI boundary, once.
 */

/** The version every `--json` document carries today. */
export const JSON_INTERFACE_VERSION = 1;

/** `flaggedByGate` → `flagged_by_gate`. Only lowerCamel identifiers change: `HF_HOME`, `llama-7b`, `a.b` stay. */
export function snakeKey(key: string): string {
  if (!/^[a-z][a-z0-9]*(?:[A-Z][a-z0-9]*)+$/.test(key)) return key;
  return key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').replace(/([A-Z])([A-Z][a-z])/g, '$1_$2').toLowerCase();
}

/** A value printed as it is, keys untouched: the user's own documents (a config as written). */
export class Verbatim {
  constructor(readonly value: unknown) {}
}
export const verbatim = (value: unknown): Verbatim => new Verbatim(value);

/** A deep copy with every object key in snake_case (Dates as ISO strings, undefined fields dropped). */
export function snakeKeys(value: unknown): unknown {
  if (value instanceof Verbatim) return value.value;
  if (Array.isArray(value)) return value.map(snakeKeys);
  if (value instanceof Date) return value.toISOString();
  if (value instanceof Map) return snakeKeys(Object.fromEntries(value));
  if (value instanceof Set) return [...value].map(snakeKeys);
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      if (v === undefined) continue;
      out[snakeKey(k)] = snakeKeys(v);
    }
    return out;
  }
  return value;
}

/**
 * The document a command prints: `{ schema: "lem.<command>/1", ...body }` with snake_case keys.
 * `command` is the command path joined by dots (`results.compare`, `campaign.list`).
 */
export function jsonDocument(command: string, body: Record<string, unknown>): Record<string, unknown> {
  const converted = snakeKeys(body) as Record<string, unknown>;
  return { schema: `lem.${command}/${JSON_INTERFACE_VERSION}`, ...converted };
}
