/**
 * vitest setup (every test file): a private device-lock directory per test file, so workers of
 * parallel test files do not wait for each other on the host's /tmp/lem-device-locks. Tests about
 * the lock itself set LEM_LOCK_DIR explicitly.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

process.env['LEM_LOCK_DIR'] = mkdtempSync(join(tmpdir(), 'lem-locks-'));
