/** Where lem's own files are, whether running from src/ (tests) or dist/ (the CLI). */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: string | null = null;

export function packageRoot(): string {
  if (cached) return cached;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'lem') {
      cached = dir;
      return dir;
    }
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find lem package root');
    dir = up;
  }
}

/** The Python worker package's parent directory (what PYTHONPATH needs). */
export function workerDir(): string {
  return join(packageRoot(), 'images', 'worker');
}
