/**
 * Reading YAML/JSON config files while keeping where every value came from, so that schema
 * errors can point at file:line:column.
 */
import { closeSync, constants, fstatSync, openSync, readSync, statSync, type Stats } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { LineCounter, parseDocument, isMap, isSeq, isScalar, visit, type Document, type Node } from 'yaml';
import type { z } from 'zod';
import { ConfigError, type ConfigProblem, type SourceLocation } from '../util/errors.js';
import { didYouMean } from './vocabulary.js';

/** The largest config or campaign file lem reads (a campaign file is a few kilobytes). */
export const MAX_CONFIG_BYTES = 1024 * 1024;
/** How many alias expansions a YAML file may make (stops "billion laughs" alias bombs). */
export const MAX_YAML_ALIASES = 100;

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

function kindOf(st: Stats): string | null {
  if (st.isFile()) return null;
  if (st.isDirectory()) return 'is a directory, not a file';
  if (st.isFIFO()) return 'is a named pipe, not a regular file';
  if (st.isSocket()) return 'is a socket, not a regular file';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'is a device, not a regular file';
  return 'is not a regular file';
}

/**
 * Reads a config file: only a regular file, at most MAX_CONFIG_BYTES. The type is checked before
 * anything is read (a named pipe would block, a device never ends), and again on the open handle.
 */
export function readSource(file: string): SourceDoc {
  const fail = (why: string): never => {
    throw new ConfigError({ file }, null, `cannot read the file: ${why}.`);
  };
  const errno = (e: unknown): never => {
    const code = (e as NodeJS.ErrnoException).code;
    return fail(code === 'ENOENT' ? 'no such file' : code === 'EACCES' || code === 'EPERM' ? 'permission denied' : code === 'EISDIR' ? 'is a directory, not a file' : String((e as Error).message));
  };
  let st: Stats;
  try {
    st = statSync(file);
  } catch (e) {
    return errno(e);
  }
  const bad = kindOf(st);
  if (bad) fail(bad);
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    return errno(e);
  }
  try {
    const now = fstatSync(fd);
    const badNow = kindOf(now);
    if (badNow) fail(badNow);
    if (now.size > MAX_CONFIG_BYTES) fail(`it is ${now.size} bytes, more than the ${MAX_CONFIG_BYTES} bytes a config or campaign file may have`);
    const buf = Buffer.alloc(Math.min(now.size, MAX_CONFIG_BYTES) + 1);
    let n = 0;
    for (;;) {
      const got = readSync(fd, buf, n, buf.length - n, null);
      if (got === 0) break;
      n += got;
      if (n > MAX_CONFIG_BYTES) fail(`it is more than the ${MAX_CONFIG_BYTES} bytes a config or campaign file may have`);
      if (n === buf.length) break;
    }
    const text = buf.subarray(0, n).toString('utf8');
    if (text.includes('\u0000')) fail('it contains NUL bytes (is it a binary file?)');
    return parseSource(file, text);
  } finally {
    closeSync(fd);
  }
}

export function parseSource(file: string, text: string): SourceDoc {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true, merge: false });
  const locOf = (offset: number): SourceLocation => {
    const p = lineCounter.linePos(offset);
    return { file, line: p.line, column: p.col };
  };
  const problems: ConfigProblem[] = doc.errors.map((err) => {
    const pos = locOf(err.pos[0]);
    const first = err.message.split('\n')[0] ?? err.message;
    const message =
      err.code === 'MULTIPLE_DOCS'
        ? 'this file holds more than one YAML document (a second `---`); a config or campaign file is one document: remove the `---` line or split the file.'
        : `this is not valid YAML: ${first.replace(/ at line \d+, column \d+:?$/, '')}.`;
    return { file, line: pos.line, column: pos.column, field: null, message };
  });
  // Aliases (*name): one that refers to no anchor, or too many expansions (an alias bomb).
  let aliases = 0;
  let firstAlias: number | null = null;
  visit(doc, {
    Alias(_key, node) {
      aliases++;
      firstAlias ??= node.range?.[0] ?? 0;
      if (node.resolve(doc) === undefined) {
        const pos = locOf(node.range?.[0] ?? 0);
        problems.push({ file, line: pos.line, column: pos.column, field: null, message: `the alias *${node.source} refers to no anchor &${node.source} defined before it.` });
      }
    },
  });
  const fail = (): never => {
    const [first, ...rest] = problems;
    if (!first) throw new Error('no problem to report');
    throw new ConfigError({ file, line: first.line ?? 1, column: first.column ?? 1 }, null, first.message, rest);
  };
  if (problems.length > 0) fail();
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: MAX_YAML_ALIASES }) as unknown;
  } catch (e) {
    const pos = locOf(firstAlias ?? 0);
    const bomb = /alias count/i.test((e as Error).message);
    problems.push({
      file,
      line: pos.line,
      column: pos.column,
      field: null,
      message: bomb
        ? `the ${aliases} aliases in this file (the first is here) expand to too much data (an alias bomb?); lem allows at most ${MAX_YAML_ALIASES} alias expansions per file.`
        : `this YAML cannot be read: ${(e as Error).message}.`,
    });
    fail();
  }
  return {
    file,
    data,
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

/** Every zod issue in plain words, located in the source; misspelt keys first (the likeliest root cause). */
export function schemaProblems(
  src: SourceDoc,
  error: z.ZodError,
  prefix: readonly PathKey[] = [],
  /** Where to point instead of the issue's own path (e.g. the grid value that produced it). */
  at?: readonly PathKey[],
): ConfigProblem[] {
  const ordered = [...error.issues.filter((i) => i.code === 'unrecognized_keys'), ...error.issues.filter((i) => i.code !== 'unrecognized_keys')];
  const out: ConfigProblem[] = [];
  const push = (path: readonly PathKey[], message: string): void => {
    const loc = src.locate(at ?? path);
    out.push({ file: loc.file, line: loc.line, column: loc.column, field: path.join('.') || null, message });
  };
  for (const issue of ordered) {
    const path = [...prefix, ...(issue.path as PathKey[])];
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        const guess = didYouMean(key);
        push([...path, key], `unknown field${guess ? `; did you mean '${guess}'?` : '; check its spelling and its place in the file.'}`);
      }
      continue;
    }
    push(path, describeIssue(issue));
  }
  return out;
}

/** All problems of a zod error as one ConfigError (the first in its message, all in `problems`). */
export function schemaError(src: SourceDoc, error: z.ZodError, prefix: readonly PathKey[] = [], at?: readonly PathKey[]): ConfigError {
  const [first, ...rest] = schemaProblems(src, error, prefix, at);
  if (!first) return new ConfigError({ file: src.file }, null, 'invalid configuration.');
  return new ConfigError({ file: first.file, line: first.line ?? 1, column: first.column ?? 1 }, first.field, first.message, rest);
}

function describeIssue(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case 'invalid_type': {
      const received = (issue as { input?: unknown }).input;
      if (received === undefined) return `this field is required (expected ${issue.expected}).`;
      if (typeof received === 'number' && !Number.isFinite(received)) return `not a finite number (got ${Number.isNaN(received) ? '.nan' : received > 0 ? '.inf' : '-.inf'}); give a finite ${issue.expected}.`;
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
      if (typeof u.input === 'number' && !Number.isFinite(u.input)) return `not a finite number (got ${Number.isNaN(u.input) ? '.nan' : u.input > 0 ? '.inf' : '-.inf'}); give a finite number.`;
      return 'does not match any allowed form.';
    }
    case 'too_small':
      return `must be ${issue.inclusive === false ? 'greater than' : 'at least'} ${String(issue.minimum)}${issue.origin === 'array' ? ' items' : issue.origin === 'string' ? ' characters' : ''}.`;
    case 'too_big':
      return `must be ${issue.inclusive === false ? 'less than' : 'at most'} ${String(issue.maximum)}${issue.origin === 'array' ? ' items' : issue.origin === 'string' ? ' characters' : ''}.`;
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
