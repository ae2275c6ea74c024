/** Stable identities: an experiment's id is a hash of its resolved config, so it never drifts. */
import { createHash } from 'node:crypto';

/** JSON with object keys sorted at every level; the input to every identity hash. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) {
      const x = (v as Record<string, unknown>)[k];
      if (x !== undefined) out[k] = sortKeys(x);
    }
    return out;
  }
  return v;
}

/** 12 hex characters of SHA-256 over the canonical config, ignoring the cosmetic `name`. */
export function experimentId(resolvedConfig: Record<string, unknown>): string {
  const { name: _name, ...rest } = resolvedConfig;
  return createHash('sha256').update(canonicalJson(rest)).digest('hex').slice(0, 12);
}
