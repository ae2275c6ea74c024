/**
 * Imported campaigns: results another tool measured, recorded in one transaction as a campaign
 * whose runs are already final (succeeded, or failed where the source says so), with the
 * provenance of every source file (tool, version, path, SHA-256) in the `imports` table.
 * The campaign's settings carry `kind: 'imported'`; it is never run or resumed.
 */
import type { CampaignSettings } from '../config/campaign.js';
import { LemError } from '../util/errors.js';
import type { Manifest } from './manifest.js';
import { enterRun } from './transitions.js';

export interface ImportProvenance {
  sha256: string;
  tool: string;
  version: string | null;
  path: string;
  format: string;
  companions: Array<{ path: string; sha256: string }>;
  runs: number;
}

export interface ImportedRunRow {
  experimentId: string;
  cycle: number;
  status: 'succeeded' | 'failed';
  startedAt: string | null;
  endedAt: string | null;
  resultPath: string;
  metrics: Record<string, number | null>;
  flags: readonly string[];
  error: string | null;
  /** Recorded in the run's `run_imported` event: where in the source it came from and why nulls are null. */
  detail: Record<string, unknown>;
}

export interface NewImportedCampaign {
  id: string;
  name: string;
  sourcePath: string;
  notes: string[];
  experiments: ReadonlyArray<{ id: string; name: string; backend: string; config: Record<string, unknown> }>;
  runs: readonly ImportedRunRow[];
  sources: readonly ImportProvenance[];
  at: string;
}

export type ImportedSettings = CampaignSettings & { kind: 'imported' };

/** Settings of an imported campaign: what lem's commands read (seed, cycles), plus the marker. */
export function importedSettings(cycles: number): ImportedSettings {
  return {
    kind: 'imported',
    cycles: Math.max(1, cycles),
    structure: 'grouped',
    seed: 42,
    thermal_gap: 0,
    runtime: 'local',
    force_cold_start: false,
    retries: 0,
    keep_services: false,
  };
}

export function isImportedCampaign(settings: unknown): boolean {
  return typeof settings === 'object' && settings !== null && (settings as { kind?: unknown }).kind === 'imported';
}

/** The campaign each already-imported checksum went into. */
export function importedChecksums(m: Manifest, checksums: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  const stmt = m.db.prepare<[string], { campaign_id: string }>('SELECT campaign_id FROM imports WHERE sha256 = ?');
  for (const s of checksums) {
    const r = stmt.get(s);
    if (r) out.set(s, r.campaign_id);
  }
  return out;
}

export function importsOf(m: Manifest, campaignId: string): Array<ImportProvenance & { importedAt: string }> {
  return m.db
    .prepare<[string], { sha256: string; source_tool: string; source_version: string | null; path: string; format: string; companions_json: string; runs: number; imported_at: string }>(
      'SELECT * FROM imports WHERE campaign_id = ? ORDER BY rowid',
    )
    .all(campaignId)
    .map((r) => ({
      sha256: r.sha256,
      tool: r.source_tool,
      version: r.source_version,
      path: r.path,
      format: r.format,
      companions: JSON.parse(r.companions_json) as Array<{ path: string; sha256: string }>,
      runs: r.runs,
      importedAt: r.imported_at,
    }));
}

/** Records an imported campaign, its final runs and their provenance in one transaction. */
export function recordImportedCampaign(m: Manifest, c: NewImportedCampaign): void {
  if (c.runs.length === 0) throw new LemError('nothing to import: no run was read.');
  const cycles = Math.max(...c.runs.map((r) => r.cycle));
  const db = m.db;
  const event = db.prepare('INSERT INTO events (campaign_id, position, at, kind, detail_json) VALUES (?, ?, ?, ?, ?)');
  db.transaction(() => {
    db.prepare(
      "INSERT INTO campaigns (id, name, source_path, settings_json, notes_json, status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'completed', ?, ?)",
    ).run(c.id, c.name, c.sourcePath, JSON.stringify(importedSettings(cycles)), JSON.stringify(c.notes), c.at, c.at);
    const insertExp = db.prepare('INSERT INTO experiments (campaign_id, id, position, name, backend, config_json) VALUES (?, ?, ?, ?, ?, ?)');
    c.experiments.forEach((e, i) => insertExp.run(c.id, e.id, i, e.name, e.backend, JSON.stringify(e.config)));
    c.runs.forEach((r, position) => {
      // Imported runs enter already final (succeeded or failed): their attempt ran in another tool.
      enterRun(db, { origin: 'imported', campaignId: c.id, position, ...r });
      event.run(c.id, position, c.at, 'run_imported', JSON.stringify(r.detail));
    });
    const insertSrc = db.prepare(
      'INSERT INTO imports (sha256, campaign_id, source_tool, source_version, path, format, companions_json, runs, imported_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
    );
    for (const s of c.sources) insertSrc.run(s.sha256, c.id, s.tool, s.version, s.path, s.format, JSON.stringify(s.companions), s.runs, c.at);
    event.run(c.id, null, c.at, 'campaign_imported', JSON.stringify({ sources: c.sources.map((s) => ({ tool: s.tool, version: s.version, path: s.path, sha256: s.sha256, runs: s.runs })) }));
  }).immediate();
}
