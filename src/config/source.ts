/**
 * Reading YAML/JSON config files while keeping where every value came from, so that schema
 * errors can point at file:line:column.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { LineCounter, parseDocument, isMap, isSeq, isScalar, type Document, type Node } from 'yaml';
import type { z } from 'zod';
import { ConfigError, type SourceLocation } from '../util/errors.js';

export type PathKey = string | number;

export interface SourceDoc {
  file: string;
  data: unknown;
  /** Location of the value at `path`, or of its nearest existing ancestor. */
  locate(path: readonly PathKey[]): SourceLocation;
}

export function resolveFrom(baseFile: string, p: string): string {
  return isAbsolute(p) ? p : resolve(baseFile, '..', p);
}

export function readSource(file: string): SourceDoc {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory, not a file' : String((e as Error).message);
    throw new ConfigError({ file }, null, `cannot read the file: ${why}.`);
  }
  return parseSource(file, text);
}

export function parseSource(file: string, text: string): SourceDoc {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true, merge: false });
  const err = doc.errors[0];
  if (err) {
    const pos = lineCounter.linePos(err.pos[0]);
    const first = err.message.split('\n')[0] ?? err.message;
    throw new ConfigError(
      { file, line: pos.line, column: pos.col },
      null,
      `this is not valid YAML: ${first.replace(/ at line \d+, column \d+:?$/, '')}.`,
    );
  }
  const locOf = (offset: number): SourceLocation => {
    const p = lineCounter.linePos(offset);
    return { file, line: p.line, column: p.col };
  };
  return {
    file,
    data: doc.toJS({ maxAliasCount: 100 }) as unknown,
    locate: (path) => locOf(offsetOf(doc, path)),
  };
}

function offsetOf(doc: Document, path: readonly PathKey[]): number {
  let node: Node | null = doc.contents;
  let offset = node?.range?.[0] ?? 0;
  for (const key of path) {
    if (isMap(node)) {
      const pair = node.items.find((it) => (isScalar(it.key) ? String(it.key.value) : String(it.key)) === String(key));
      if (!pair) break;
      const value = pair.value as Node | null;
      // Point at the value when there is one; at the key when the value is empty.
      offset = value?.range?.[0] ?? (pair.key as Node | null)?.range?.[0] ?? offset;
      node = value;
    } else if (isSeq(node) && typeof key === 'number') {
      const item = node.items[key] as Node | undefined;
      if (!item) break;
      offset = item.range?.[0] ?? offset;
      node = item;
    } else {
      break;
    }
  }
  return offset;
}

/** Plain-words description of the first few zod issues, located in the source. */
export function schemaError(
  src: SourceDoc,
  error: z.ZodError,
  prefix: readonly PathKey[] = [],
  /** Where to point instead of the issue's own path (e.g. the grid value that produced it). */
  at?: readonly PathKey[],
): ConfigError {
  // A misspelt key is the likeliest root cause of the other problems, so it is reported first.
  const issue = error.issues.find((i) => i.code === 'unrecognized_keys') ?? error.issues[0];
  if (!issue) return new ConfigError({ file: src.file }, null, 'invalid configuration.');
  const path = [...prefix, ...(issue.path as PathKey[])];
  let field = path.join('.');
  let problem = describeIssue(issue);
  if (issue.code === 'unrecognized_keys' && issue.keys.length > 0) {
    const key = issue.keys[0] as string;
    path.push(key);
    field = path.join('.');
    problem = `unknown field${issue.keys.length > 1 ? `s ${issue.keys.map((k) => `'${k}'`).join(', ')}` : ''}; check its spelling and its place in the file.`;
  }
  const more = error.issues.length > 1 ? ` (${error.issues.length - 1} more problem${error.issues.length > 2 ? 's' : ''} after this one.)` : '';
  return new ConfigError(src.locate(at ?? path), field || null, problem + more);
}

function describeIssue(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case 'invalid_type': {
      const received = (issue as { input?: unknown }).input;
      if (received === undefined) return `this field is required (expected ${issue.expected}).`;
      return `expected ${issue.expected}, got ${typeOf(received)} ${JSON.stringify(received)}.`;
    }
    case 'invalid_value':
      return `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}.`;
    case 'invalid_union': {
      const u = issue as { discriminator?: string; options?: unknown[]; input?: unknown };
      if (u.discriminator && u.options) {
        const given = u.input !== null && typeof u.input === 'object' ? (u.input as Record<string, unknown>)[u.discriminator] : undefined;
        const allowed = u.options.map((o) => JSON.stringify(o)).join(', ');
        return given === undefined ? `this field is required; one of ${allowed}.` : `unknown ${u.discriminator} ${JSON.stringify(given)}; must be one of ${allowed}.`;
      }
      return 'does not match any allowed form.';
    }
    case 'too_small':
      return `must be ${issue.inclusive === false ? 'greater than' : 'at least'} ${String(issue.minimum)}${issue.origin === 'array' ? ' items' : issue.origin === 'string' ? ' characters' : ''}.`;
    case 'too_big':
      return `must be ${issue.inclusive === false ? 'less than' : 'at most'} ${String(issue.maximum)}.`;
    default:
      return issue.message.endsWith('.') ? issue.message : `${issue.message}.`;
  }
}

function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return `a ${typeof v}`;
}
