/**
 * Opening the SQLite manifest: WAL, busy timeout, and schema migrations keyed by user_version.
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { LemError } from '../util/errors.js';

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
  // daemon: scheduled fires (one row per slot fired; UNIQUE so a slot never fires twice), the daemon
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
];

export const SCHEMA_VERSION = MIGRATIONS.length;

export function openDb(path: string): Db {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  let db: Db;
  try {
    db = new Database(path);
  } catch (e) {
    throw new LemError(`cannot open the manifest ${path}: ${(e as Error).message}`);
  }
  db.pragma('journal_mode = WAL');
  db.pragma('busy_timeout = 5000');
  db.pragma('foreign_keys = ON');
  db.pragma('synchronous = NORMAL');
  migrate(db, path);
  return db;
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
