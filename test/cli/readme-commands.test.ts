/**
 * Every `npx lem …` line in the README's code blocks names commands and options the CLI has (with
 * the values of a choice option among its choices), and the concrete ones that only read files or
 * write the state directory run exactly as written (through bash and npx, in document order) and
 * exit 0. Lines that need an engine, a GPU, a running daemon or a campaign id are checked for their
 * syntax only.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { lem, ROOT, tempDir } from '../helpers/cli.js';

interface ReadmeCommand {
  line: number;
  /** The shell text from `npx lem` on, comment removed. */
  text: string;
  /** The words after `lem`, before any comment or redirection. */
  words: string[];
}

function readmeCommands(): ReadmeCommand[] {
  const lines = readFileSync(join(ROOT, 'README.md'), 'utf8').split('\n');
  const out: ReadmeCommand[] = [];
  let inBlock = false;
  lines.forEach((raw, i) => {
    if (raw.trimStart().startsWith('```')) {
      inBlock = !inBlock;
      return;
    }
    if (!inBlock) return;
    const at = raw.search(/(^|\s)npx lem(\s|$)/);
    if (at < 0) return;
    const text = raw.slice(at).replace(/\s+#.*$/, '').trim();
    const words = text.replace(/^npx lem\s*/, '').split(/\s+(?:>|2>).*$/)[0]!.split(/\s+/).filter(Boolean);
    out.push({ line: i + 1, text, words });
  });
  return out;
}

const helpCache = new Map<string, string>();
function help(path: readonly string[]): string {
  const key = path.join(' ');
  let h = helpCache.get(key);
  if (h === undefined) {
    const r = lem([...path, '--help']);
    h = r.stdout;
    helpCache.set(key, h);
  }
  return h;
}
/** The subcommand names (and aliases) a help text lists. */
function subcommands(h: string): Set<string> {
  const section = /\nCommands:\n([\s\S]*)$/.exec(h)?.[1] ?? '';
  const names = [...section.matchAll(/^ {2}(\S+)/gm)].flatMap((m) => (m[1] as string).split('|'));
  return new Set(names);
}
/** The option names a help text lists (long and short). */
function options(h: string): Set<string> {
  const section = /\nOptions:\n([\s\S]*?)(\n\n|$)/.exec(h)?.[1] ?? '';
  return new Set([...section.matchAll(/(?:^|[\s,])(--?[a-zA-Z][\w-]*)/gm)].map((m) => m[1] as string));
}

const commands = readmeCommands();
/** Command paths whose concrete README lines are run: they read files and write only the state directory (or the -o file they name). */
const RUN = new Set(['results import', 'results compare', 'config import', 'config validate', 'config params', 'backends']);
const PLACEHOLDER = /[[\]|…]|\b[A-Z][A-Z_]+\b/;

describe('the README’s lem commands', () => {
  beforeAll(() => {
    expect(commands.length).toBeGreaterThan(30); // the parse found the blocks
  });

  it('name commands and options the CLI has, with choice values among its choices', () => {
    const problems: string[] = [];
    const globals = options(help([]));
    for (const c of commands) {
      const path: string[] = [];
      for (const w of c.words) {
        if (!subcommands(help(path)).has(w)) break;
        path.push(w);
      }
      if (path.length === 0) {
        problems.push(`README.md:${c.line}: no lem command in \`${c.text}\``);
        continue;
      }
      const h = help(path);
      if (subcommands(h).size > 0 && !/\bhelp\b/.test(c.words[path.length] ?? 'help')) {
        problems.push(`README.md:${c.line}: \`lem ${path.join(' ')}\` needs a subcommand, got '${c.words[path.length]}'`);
      }
      const known = new Set([...options(h), ...globals]);
      c.words.forEach((w, i) => {
        const opt = /^\[?(--?[a-zA-Z][\w-]*)/.exec(w)?.[1];
        if (!opt) return;
        if (!known.has(opt)) problems.push(`README.md:${c.line}: \`lem ${path.join(' ')}\` has no option ${opt}`);
        // `--format csv|json|…`: every listed value is one of the option's choices.
        const value = c.words[i + 1]?.replace(/[\]]+$/, '');
        if (value && value.includes('|') && /^[a-z0-9|-]+$/.test(value)) {
          for (const v of value.split('|')) if (!h.includes(`"${v}"`)) problems.push(`README.md:${c.line}: ${opt} ${v} is not among its choices`);
        }
      });
    }
    expect(problems).toEqual([]);
  });

  it('that only read files or write the state run exactly as written, in order, and exit 0', () => {
    const state = tempDir();
    const concrete = commands.filter((c) => !PLACEHOLDER.test(c.words.join(' ')) && [...RUN].some((p) => c.words.join(' ').startsWith(`${p} `) || c.words.join(' ') === p));
    expect(concrete.length).toBeGreaterThanOrEqual(5);
    const failed: string[] = [];
    for (const c of concrete) {
      const r = spawnSync('bash', ['-c', c.text], { cwd: ROOT, env: { ...process.env, LEM_STATE_DIR: state }, encoding: 'utf8', timeout: 120_000 });
      if (r.status !== 0) failed.push(`README.md:${c.line}: \`${c.text}\` exited ${r.status}: ${(r.stderr || r.stdout).trim().split('\n').slice(-2).join(' / ')}`);
    }
    expect(failed).toEqual([]);
  }, 300_000);
});
