/**
 * The CLI's error boundary: a user-causable error becomes one paragraph with its documented exit
 * code; a bug becomes exit 70 with one line saying where to report it and where the stack went.
 */
import Database from 'better-sqlite3';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { explain, issuesUrl, reportCrash } from '../../src/cli/crash.js';
import { EXIT_DISK_FULL, EXIT_INTERNAL, EXIT_STATE_DAMAGED, EXIT_USAGE, LemError } from '../../src/util/errors.js';
import { tempDir } from '../helpers/cli.js';

const where = (dir: string) => ({ stateDir: dir, dbPath: join(dir, 'lem.db') });

function errno(code: string, path?: string): NodeJS.ErrnoException {
  const e = new Error(`${code}: something, write`) as NodeJS.ErrnoException;
  e.code = code;
  if (path) e.path = path;
  e.syscall = 'write';
  return e;
}

describe('explain: what the user can act on', () => {
  it('a full disk (ENOSPC, SQLITE_FULL) is exit 3 naming the path', () => {
    const dir = tempDir();
    const a = explain(errno('ENOSPC', '/data/state/runs/x/config.json'), where(dir));
    expect(a?.exitCode).toBe(EXIT_DISK_FULL);
    expect(a?.message).toMatch(/^disk full at \/data\/state\/runs\/x\/config\.json/);
    const b = explain(Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' }), where(dir));
    expect(b?.exitCode).toBe(EXIT_DISK_FULL);
  });

  it('a real SQLITE_NOTADB from better-sqlite3 is the damaged-manifest message, exit 4', () => {
    const dir = tempDir();
    const path = join(dir, 'lem.db');
    writeFileSync(path, 'not a database, but long enough to have a header of one hundred bytes...'.repeat(20));
    let caught: unknown;
    try {
      new Database(path).pragma('user_version');
    } catch (e) {
      caught = e;
    }
    const x = explain(caught, where(dir));
    expect(x?.exitCode).toBe(EXIT_STATE_DAMAGED);
    expect(x?.message).toContain(`the manifest ${path} is damaged`);
  });

  it('an unusable path (EACCES) is exit 2 naming it; a LemError keeps its own code', () => {
    const dir = tempDir();
    expect(explain(errno('EACCES', '/root/x.csv'), where(dir))).toMatchObject({ exitCode: EXIT_USAGE, message: expect.stringMatching(/^cannot write \/root\/x\.csv: EACCES/) as unknown });
    const own = new LemError('mine', 1);
    expect(explain(own, where(dir))).toBe(own);
  });

  it('anything else is a bug (null)', () => {
    expect(explain(new TypeError('x is undefined'), where(tempDir()))).toBeNull();
  });
});

describe('reportCrash: exit 70, one line, the stack in a crash log', () => {
  it('writes the stack under <state>/crash and prints one line with the issues URL and the log path', () => {
    const dir = tempDir();
    const lines: string[] = [];
    const bug = new TypeError("Cannot read properties of undefined (reading 'id')");
    const code = reportCrash(bug, dir, ['campaign', 'status'], (l) => lines.push(l));
    expect(code).toBe(EXIT_INTERNAL);
    expect(lines).toHaveLength(1);
    const line = lines[0] as string;
    expect(line).toMatch(/^lem: internal error: Cannot read properties of undefined \(reading 'id'\) — this is a bug; please report it at .+ with the log at /);
    expect(line).toContain(issuesUrl());
    expect(line).not.toMatch(/\n|\(\S+:\d+:\d+\)/);
    const log = /with the log at (\S+)\.$/.exec(line)?.[1] as string;
    expect(log.startsWith(join(dir, 'crash'))).toBe(true);
    expect(existsSync(log)).toBe(true);
    const body = readFileSync(log, 'utf8');
    expect(body).toContain(bug.stack as string);
    expect(body).toContain('"campaign","status"');
  });

  it('falls back to $TMPDIR when the state directory cannot hold the log', () => {
    const dir = tempDir();
    const blocked = join(dir, 'file');
    writeFileSync(blocked, '');
    const lines: string[] = [];
    reportCrash(new Error('boom'), blocked, [], (l) => lines.push(l));
    const log = /with the log at (\S+)\.$/.exec(lines[0] ?? '')?.[1] as string;
    expect(log.startsWith(blocked)).toBe(false);
    expect(existsSync(log)).toBe(true);
  });
});
