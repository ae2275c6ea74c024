/**
 * The values a compose file is read into: YAML with compose's `!reset` (the merge removes the
 * field) and `!override` (the field replaces what earlier files said) kept as markers.
 */
import { YAMLMap, YAMLSeq } from 'yaml';
import type { CollectionTag, ScalarTag } from 'yaml';

// --- YAML: !reset / !override ---------------------------------------------------------------

/** `!reset`: the field is removed by the merge. */
export class Reset {
  readonly lemComposeReset = true;
}
/** `!override`: the field replaces what earlier files said, wholesale. */
export class Override {
  constructor(readonly value: unknown) {}
}

export const resetTags: (ScalarTag | CollectionTag)[] = [
  { tag: '!reset', collection: 'map', nodeClass: YAMLMap, resolve: () => new Reset() } as CollectionTag,
  { tag: '!reset', collection: 'seq', nodeClass: YAMLSeq, resolve: () => new Reset() } as CollectionTag,
  { tag: '!reset', resolve: () => new Reset() } as ScalarTag,
  {
    tag: '!override',
    collection: 'map',
    nodeClass: YAMLMap,
    resolve: (m: YAMLMap) => new Override(m.toJSON()),
  } as unknown as CollectionTag,
  {
    tag: '!override',
    collection: 'seq',
    nodeClass: YAMLSeq,
    resolve: (s: YAMLSeq) => new Override(s.toJSON()),
  } as unknown as CollectionTag,
  { tag: '!override', resolve: (s: string) => new Override(s) } as ScalarTag,
];

// --- values and interpolation ---------------------------------------------------------------

/** A YAML value as read, with its markers. */
export type Json = string | number | boolean | null | Json[] | { [k: string]: Json } | Reset | Override;
export type Obj = { [k: string]: Json };

export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Reset) && !(v instanceof Override);
}

/** A copy without the !reset / !override markers: what a file says on its own, for validation. */
export function unmark(v: Json): Json | undefined {
  if (v instanceof Reset) return undefined;
  if (v instanceof Override) return unmark(v.value as Json);
  if (Array.isArray(v)) return v.map((x) => unmark(x) ?? null);
  if (isObj(v)) {
    const out: Obj = {};
    for (const [k, x] of Object.entries(v)) {
      const u = unmark(x);
      if (u !== undefined) out[k] = u;
    }
    return out;
  }
  return v;
}
