/**
 * The orchestrator's own structured log (JSON lines, pino), one file per campaign session beside
 * the manifest. Written synchronously so a crash loses no line.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import pino, { type Logger } from 'pino';

export type { Logger };

export function fileLogger(path: string): Logger {
  mkdirSync(dirname(path), { recursive: true });
  return pino({ base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ dest: path, sync: true, append: true }));
}
