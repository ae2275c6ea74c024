/**
 * The orchestrator's own structured log (JSON lines, pino), one file per campaign session beside
 * the manifest. Written synchronously so a crash loses no line.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import pino, { type Logger } from 'pino';

export type { Logger };

/**
 * A log line that cannot be written (a full disk) must not crash the campaign: the error is
 * reported once on stderr and later lines are dropped until writing works again.
 */
export function fileLogger(path: string, onError: (message: string) => void = (m) => process.stderr.write(`${m}\n`)): Logger {
  mkdirSync(dirname(path), { recursive: true });
  const dest = pino.destination({ dest: path, sync: true, append: true });
  let told = false;
  dest.on('error', (e: NodeJS.ErrnoException) => {
    if (told) return;
    told = true;
    onError(`lem: cannot write the log ${path}: ${e.code ?? e.message}; the campaign goes on without it`);
  });
  return pino({ base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, dest);
}
