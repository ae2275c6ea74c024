/**
 * Opening the SQLite manifest: WAL, busy timeout, and schema migrations keyed by user_version.
 * A damaged file is detected on open (header, quick_check) and reported as such (exit 4); a
 * manifest in a directory this process cannot write is opened read-only for read commands.
 */
import Database from 'better-sqlite3';
import { accessSync, closeSync, constants, existsSync, mkdirSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { EXIT_STATE_DAMAGED, EXIT_USAGE, LemError } from '../util/errors.js';

export type Db = Database.Database;

/** Each entry migrates from user_version = index to index + 1. Append only; never edit a shipped one. */
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE campaigns (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    source_path   TEXT NOT NULL,
    settings_json TEXT NOT NULL,
    notes_json    TEXT NOT NULL DEFAULT '[]',
    status        TEXT NOT NULL CHECK (status IN ('planned','running','completed','failed','interrupted')),
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    owner_pid     INTEGER,
    owner_host    TEXT
  );
  CREATE TABLE experiments (
    campaign_id TEXT NOT NULL REFERENCES campaigns(id),
    id          TEXT NOT NULL,
    position    INTEGER NOT NULL,
    name        TEXT NOT NULL,
    backend     TEXT NOT NULL,
    config_json TEXT NOT NULL,
    PRIMARY KEY (campaign_id, id)
  );
  CREATE TABLE runs (
    campaign_id   TEXT NOT NULL REFERENCES campaigns(id),
    position      INTEGER NOT NULL,
    experiment_id TEXT NOT NULL,
    cycle         INTEGER NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('pending','running','succeeded','failed','interrupted')),
    attempt       INTEGER NOT NULL DEFAULT 0,
    handle        TEXT,
    started_at    TEXT,
    ended_at      TEXT,
    exit_code     INTEGER,
    error         TEXT,
    result_path   TEXT,
    metrics_json  TEXT,
    PRIMARY KEY (campaign_id, position),
    UNIQUE (campaign_id, experiment_id, cycle),
    FOREIGN KEY (campaign_id, experiment_id) REFERENCES experiments(campaign_id, id)
  ) WITHOUT ROWID;
  CREATE INDEX runs_by_status ON runs (campaign_id, status);
  CREATE TABLE events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    campaign_id TEXT NOT NULL,
    position    INTEGER,
    at          TEXT NOT NULL,
    kind        TEXT NOT NULL,
    detail_json TEXT NOT NULL DEFAULT '{}'
  );
  CREATE INDEX events_by_campaign ON events (campaign_id, seq);
  CREATE TRIGGER events_append_only_u BEFORE UPDATE ON events BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
  CREATE TRIGGER events_append_only_d BEFORE DELETE ON events BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
  `,
  // 2: validation gates that fired for a succeeded run (result schema v3), for late aggregation.
  `ALTER TABLE runs ADD COLUMN flags_json TEXT;`,
  // 3: imports: provenance of results imported from other tools, one row per source
  // file (keyed by its SHA-256, so importing the same file twice is a no-op); see manifest/imports.ts.
  `
  CREATE TABLE imports (
    sha256          TEXT PRIMARY KEY,
    campaign_id     TEXT NOT NULL REFERENCES campaigns(id),
    source_tool     TEXT NOT NULL,
    source_version  TEXT,
    path            TEXT NOT NULL,
    format          TEXT NOT NULL,
    companions_json TEXT NOT NULL DEFAULT '[]',
    runs            INTEGER NOT NULL,
    imported_at     TEXT NOT NULL
  );
  CREATE INDEX imports_by_campaign ON imports (campaign_id);
  `,
  // 4: result-checksum: the SHA-256 and size of a succeeded run's result.json as ingested, so that a
  // result file deleted or changed afterwards is noticed when results are read (NULL for older runs).
  `ALTER TABLE runs ADD COLUMN result_sha256 TEXT; ALTER TABLE runs ADD COLUMN result_bytes INTEGER;`,
  // 5: trust-lock: each attempt's token (recorded before its worker starts, so resume can find the
  // worker), and every ingested measured window per device (recorded results and orphans'), for the
  // overlapping_window flag.
  `
  ALTER TABLE runs ADD COLUMN attempt_token TEXT;
  CREATE TABLE windows (
    campaign_id TEXT NOT NULL,
    position    INTEGER NOT NULL,
    attempt     INTEGER NOT NULL,
    device      TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    ended_at    TEXT NOT NULL,
    PRIMARY KEY (campaign_id, position, attempt, device)
  );
  CREATE INDEX windows_by_device ON windows (device, started_at);
  `,
  // 6: daemon: scheduled fires (one row per slot fired; UNIQUE so a slot never fires twice), the daemon
  // lock and schedule cursor per campaign, and the run → fire link (scheduled start = the fire's slot).
  `
  CREATE TABLE fires (
    campaign_id  TEXT NOT NULL REFERENCES campaigns(id),
    slot         TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    scheduled_at TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    ended_at     TEXT,
    status       TEXT NOT NULL CHECK (status IN ('running','succeeded','failed','interrupted')),
    late         INTEGER NOT NULL DEFAULT 0,
    cycles_json  TEXT NOT NULL,
    error        TEXT,
    PRIMARY KEY (campaign_id, slot),
    UNIQUE (campaign_id, seq)
  ) WITHOUT ROWID;
  CREATE TABLE daemons (
    campaign_id TEXT PRIMARY KEY REFERENCES campaigns(id),
    pid         INTEGER,
    host        TEXT,
    started_at  TEXT,
    log_path    TEXT,
    anchor_at   TEXT NOT NULL,
    cursor_at   TEXT NOT NULL,
    ended_at    TEXT,
    end_reason  TEXT,
    last_error  TEXT
  );
  ALTER TABLE runs ADD COLUMN fire_slot TEXT;
  `,
  // 7: the campaign's experimental design as planned (whole-plot and sub-plot factors, engine loads): design.ts.
  `
  CREATE TABLE designs (
    campaign_id TEXT PRIMARY KEY REFERENCES campaigns(id),
    design_json TEXT NOT NULL
  );
  `,
  // 8: failures: the failure kind of a run's last failed or interrupted attempt (the worker's
  // failure.json or exit code, or the runtime's: timeout, container_gone, killed); each attempt's kind
  // is also in its run_failed / run_interrupted event. NULL for runs ended before kinds existed.
  `ALTER TABLE runs ADD COLUMN failure_kind TEXT;`,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/** quick_check runs on open for manifests up to this size (~100 ms per 20 MB on a small machine); larger ones rely on the header check, SQLITE_CORRUPT at query time, and `lem state check`. */
export const QUICK_CHECK_MAX_BYTES = 8 * 1024 * 1024;

export interface OpenOptions {
  /**
   * 'write' (default): the manifest is created and migrated, and the directory must be writable.
   * 'read': a read command; where the file or its directory cannot be written, it is opened read-only.
   */
  mode?: 'read' | 'write';
}

/** What the user is told about a damaged manifest, and what to do (exit 4). */
export function damagedManifest(path: string, detail: string): LemError {
  return new LemError(
    `the manifest ${path} is damaged (${detail}). Nothing measured is lost: each run's directory keeps its config.json and result.json. ` +
      `Move the damaged file aside (mv ${path} ${path}.damaged), then restore a backup made with \`lem state backup\` or let lem start a new manifest; ` +
      `README.md, 'Recovering from a damaged state directory', says how to recover results from the run directories.`,
    EXIT_STATE_DAMAGED,
  );
}

function sqliteCode(e: unknown): string {
  const code = (e as { code?: unknown }).code;
  return typeof code === 'string' ? code : '';
}

function writable(path: string): boolean {
  try {
    accessSync(path, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** The first 16 bytes of every SQLite database file. */
const MAGIC = 'SQLite format 3\0';

function checkHeader(path: string): void {
  const st = statSync(path);
  if (!st.isFile()) throw new LemError(`the manifest path ${path} is ${st.isDirectory() ? 'a directory' : 'not a regular file'}; --db takes the database file (default <state>/lem.db).`, EXIT_USAGE);
  const size = st.size;
  if (size === 0) return; // a new, empty file: SQLite initialises it
  const buf = Buffer.alloc(100);
  const fd = openSync(path, 'r');
  let n: number;
  try {
    n = readSync(fd, buf, 0, 100, 0);
  } finally {
    closeSync(fd);
  }
  if (n < 100 || buf.subarray(0, 16).toString('latin1') !== MAGIC) throw damagedManifest(path, n < 100 ? `only ${size} bytes, shorter than an SQLite header` : 'not an SQLite database file');
  const pageSize = buf.readUInt16BE(16) === 1 ? 65536 : buf.readUInt16BE(16);
  if (pageSize < 512 || (pageSize & (pageSize - 1)) !== 0) throw damagedManifest(path, 'its header is corrupt (page size)');
  if (size % pageSize !== 0) throw damagedManifest(path, `truncated: ${size} bytes is not a whole number of ${pageSize}-byte pages`);
}

/** Runs a bounded integrity check; throws the damaged-manifest error with SQLite's first complaint. */
export function quickCheck(db: Db, path: string, full = false): void {
  let rows: Array<Record<string, unknown>>;
  try {
    rows = db.pragma(full ? 'integrity_check(20)' : 'quick_check(1)') as Array<Record<string, unknown>>;
  } catch (e) {
    throw asDamaged(e, path) ?? e;
  }
  const msgs = rows.map((r) => String(Object.values(r)[0]).replace(/\s+/g, ' '));
  if (msgs.length !== 1 || msgs[0] !== 'ok') throw damagedManifest(path, `integrity check: ${msgs.slice(0, 3).join('; ')}`);
}

/** The damaged-manifest error for an SQLITE_CORRUPT / SQLITE_NOTADB exception, else null. */
export function asDamaged(e: unknown, path: string): LemError | null {
  const code = sqliteCode(e);
  if (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB') return damagedManifest(path, (e as Error).message);
  return null;
}

export function openDb(path: string, opts: OpenOptions = {}): Db {
  if (path === ':memory:') return configure(new Database(path), path, false);
  const dir = dirname(path);
  if (existsSync(dir) && !statSync(dir).isDirectory()) throw new LemError(`cannot mkdir ${dir}: ENOTDIR (a file is in the way of the state directory; use --state DIR or --db PATH).`, EXIT_USAGE);
  const exists = existsSync(path);
  if (exists) checkHeader(path);
  const canWrite = writable(exists ? path : dir) && (!existsSync(dir) || writable(dir));
  if (opts.mode === 'read' && exists && !canWrite) return openReadOnly(path);
  if (existsSync(dir) && !writable(dir)) {
    throw new LemError(`the state directory ${dir} is not writable by this user, and this command writes to the manifest there; fix its permissions, or point --state (or --db) at a writable directory. Read commands (campaign list/status, results, report) still work.`, EXIT_USAGE);
  }
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true });
  let db: Db;
  try {
    db = new Database(path);
  } catch (e) {
    throw asDamaged(e, path) ?? new LemError(`cannot open the manifest ${path}: ${(e as Error).message}`);
  }
  try {
    return configure(db, path, exists && statSync(path).size <= QUICK_CHECK_MAX_BYTES);
  } catch (e) {
    db.close();
    throw asDamaged(e, path) ?? e;
  }
}

function configure(db: Db, path: string, check: boolean): Db {
  db.pragma('journal_mode = WAL');
  db.pragma('busy_timeout = 5000');
  db.pragma('foreign_keys = ON');
  db.pragma('synchronous = NORMAL');
  if (check) quickCheck(db, path);
  migrate(db, path);
  return db;
}

/**
 * A manifest this process cannot write (a read-only mount, another user's directory): opened
 * read-only; where SQLite cannot open a WAL database read-only (no -shm to share), a private
 * in-memory copy of the file is read instead.
 */
function openReadOnly(path: string): Db {
  let db: Db;
  try {
    db = new Database(path, { readonly: true, fileMustExist: true });
    db.pragma('user_version', { simple: true });
  } catch (e) {
    const damaged = asDamaged(e, path);
    if (damaged) throw damaged;
    const buf = readFileSync(path);
    // Bytes 18-19: the file's journal format; 1 (rollback) lets an in-memory copy open without a -wal file.
    if (buf.length >= 20) buf.fill(1, 18, 20);
    db = new Database(buf, { readonly: true });
  }
  try {
    if (statSync(path).size <= QUICK_CHECK_MAX_BYTES) quickCheck(db, path);
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version !== MIGRATIONS.length) {
      throw new LemError(`the manifest ${path} has schema version ${version} and this lem expects ${MIGRATIONS.length}; it is read-only here, so it cannot be migrated: run any command once where it is writable.`, EXIT_USAGE);
    }
    db.pragma('busy_timeout = 5000');
    return db;
  } catch (e) {
    db.close();
    throw asDamaged(e, path) ?? e;
  }
}

function migrate(db: Db, path: string): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version > MIGRATIONS.length) {
    throw new LemError(`the manifest ${path} has schema version ${version}, newer than this lem understands (${MIGRATIONS.length}); upgrade lem.`);
  }
  for (let v = version; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v] as string);
      db.pragma(`user_version = ${v + 1}`);
    }).immediate();
  }
}
