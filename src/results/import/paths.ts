/**
 * Which files an import reads: a PATH is a file, a directory (walked for result files) or a glob
 * (`*`, `?`, `**`, expanded here when the shell did not). A PATH that exists nowhere is "no such
 * file", never taken for something else.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { LemError } from '../../util/errors.js';

export interface Candidate {
  path: string;
  /** Named by the user (a file argument): anything but a result is an error. Found by a walk or glob: skipped with a note. */
  explicit: boolean;
}

const GLOB = /[*?]/;

function globToRegExp(segment: string): RegExp {
  let re = '';
  for (const c of segment) {
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

function walk(dir: string, out: string[]): void {
  for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    if (e.name.startsWith('.') || e.name === 'node_modules') continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if (e.isFile()) out.push(p);
  }
}

/** Expands a glob pattern (relative to cwd or absolute) to existing paths, sorted. */
export function expandGlob(pattern: string): string[] {
  const abs = isAbsolute(pattern) ? pattern : resolve(pattern);
  const parts = abs.split(sep);
  const firstGlob = parts.findIndex((p) => GLOB.test(p));
  const base = parts.slice(0, firstGlob).join(sep) || sep;
  const rest = parts.slice(firstGlob);
  let current = [base];
  rest.forEach((seg, i) => {
    const last = i === rest.length - 1;
    const next: string[] = [];
    for (const dir of current) {
      if (!existsSync(dir) || !statSync(dir).isDirectory()) continue;
      if (seg === '**') {
        const all: string[] = [];
        walk(dir, all);
        const dirs = new Set<string>([dir]);
        for (const f of all) for (let d = dirname(f); d.length >= dir.length && d.startsWith(dir); d = dirname(d)) dirs.add(d);
        next.push(...(last ? all : [...dirs]));
        continue;
      }
      const re = globToRegExp(seg);
      for (const name of readdirSync(dir)) if (re.test(name)) next.push(join(dir, name));
    }
    current = [...new Set(next)];
  });
  return current.filter((p) => existsSync(p)).sort();
}

/** The files named by PATH arguments; LemError (exit 2) for a path that does not exist or a glob that matches nothing. */
export function candidateFiles(paths: readonly string[]): Candidate[] {
  const out: Candidate[] = [];
  const add = (path: string, explicit: boolean): void => {
    if (statSync(path).isDirectory()) {
      const files: string[] = [];
      walk(path, files);
      for (const f of files) out.push({ path: f, explicit: false });
    } else out.push({ path: resolve(path), explicit });
  };
  for (const p of paths) {
    if (existsSync(p)) {
      add(p, true);
      continue;
    }
    if (GLOB.test(p)) {
      const matched = expandGlob(p);
      if (matched.length === 0) throw new LemError(`${p}: no file matches this pattern.`);
      for (const m of matched) add(m, false);
      continue;
    }
    throw new LemError(`${p}: no such file or directory.`);
  }
  const seen = new Set<string>();
  return out.filter((c) => (seen.has(c.path) ? false : (seen.add(c.path), true)));
}

/** A path as the user would type it: relative to cwd when inside it. */
export function displayPath(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : path;
}
