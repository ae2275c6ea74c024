/**
 * Every malformed input gives one paragraph naming the file (and line:column and field where they
 * apply), exit code 2, and no stack trace. Fixtures: test/fixtures/malformed/.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { lem, ROOT } from '../helpers/cli.js';

const DIR = join(ROOT, 'test', 'fixtures', 'malformed');

/** Where each fixture's error must point: line (null = whole file) and the field named (null = none). */
const EXPECTED: Record<string, { line: number | null; field: string | null; says: RegExp }> = {
  '01-unclosed-flow.yaml': { line: 3, field: null, says: /not valid YAML/ },
  '02-tab-indent.yaml': { line: 3, field: null, says: /Tabs/ },
  '03-duplicate-key.yaml': { line: 3, field: null, says: /unique/ },
  '04-unknown-backend.yaml': { line: 2, field: 'backend', says: /unknown backend "onnx".*"pytorch"/ },
  '05-wrong-type-batch-size.yaml': { line: 5, field: 'batching.batch_size', says: /expected number, got a string "eight"/ },
  '06-negative-cycles.yaml': { line: 3, field: 'cycles', says: /at least 1/ },
  '07-unknown-field.yaml': { line: 3, field: 'modle', says: /unknown field/ },
  '08-missing-model.yaml': { line: 1, field: 'model', says: /required/ },
  '09-campaign-no-experiments.yaml': { line: 1, field: null, says: /needs experiments/ },
  '10-campaign-configs-and-grid.yaml': { line: 3, field: 'base_config', says: /not both/ },
  '11-campaign-missing-config-file.yaml': { line: 4, field: 'configs.1', says: /does-not-exist\.yaml, which does not exist/ },
  '12-grid-wrong-value-type.yaml': { line: 6, field: 'batching.batch_size', says: /got a string "big"/ },
  '13-grid-unknown-key.yaml': { line: 6, field: 'batchsize', says: /unknown field/ },
  '14-grid-every-combination-invalid.yaml': { line: 6, field: null, says: /no valid experiment.*bitsandbytes/ },
  '15-bad-structure.yaml': { line: 3, field: 'structure', says: /"interleaved", "shuffled", "grouped"/ },
  '16-bad-runtime.yaml': { line: 3, field: 'runtime', says: /"local", "docker"/ },
  '17-empty-file.yaml': { line: 1, field: null, says: /not empty/ },
  '18-top-level-list.yaml': { line: 1, field: null, says: /not a list/ },
  '19-bad-precision.yaml': { line: 3, field: 'precision', says: /"fp32", "fp16", "bf16", "fp8"/ },
  '20-vary-not-a-list.yaml': { line: 4, field: 'vary.calibration.matrix_size', says: /expected array/ },
  '21-campaign-name-with-space.yaml': { line: 1, field: 'campaign_name', says: /letters, digits/ },
  '22-top-p-out-of-range.yaml': { line: 5, field: 'decoder.top_p', says: /at most 1/ },
  '23-missing-base-config-file.yaml': { line: 2, field: 'base_config', says: /which does not exist/ },
  '24-fp8-on-pytorch.yaml': { line: 3, field: 'precision', says: /fp8 is not supported/ },
};

describe('malformed inputs', () => {
  const files = readdirSync(DIR).filter((f) => /^\d\d-/.test(f)).sort();

  it('has at least 20 fixtures, each with an expectation', () => {
    expect(files.length).toBeGreaterThanOrEqual(20);
    expect(files.filter((f) => !(f in EXPECTED))).toEqual([]);
  });

  for (const file of files) {
    it(`${file}: one located paragraph, exit 2, no stack trace`, () => {
      const want = EXPECTED[file];
      if (!want) throw new Error(`no expectation for ${file}`);
      const path = join('test', 'fixtures', 'malformed', file);
      const r = lem(['config', 'validate', path]);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('');
      const msg = r.stderr.trimEnd();
      expect(msg.split('\n')).toHaveLength(1);
      expect(msg).not.toMatch(/\n\s+at |Error:|node:internal/);
      expect(msg).toMatch(/^lem: /);
      if (want.line !== null) expect(msg).toMatch(new RegExp(`${file.replace(/\./g, '\\.')}:${want.line}:\\d+: `));
      if (want.field !== null) expect(msg).toContain(`field '${want.field}'`);
      expect(msg).toMatch(want.says);
    });
  }

  it('a campaign run on a malformed campaign also exits 2 without touching the manifest', () => {
    const r = lem(['--state', join(DIR, '.no-state'), 'campaign', 'run', join('test', 'fixtures', 'malformed', '15-bad-structure.yaml')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/15-bad-structure\.yaml:3:\d+: field 'structure'/);
  });

  it('a missing file is a clear error', () => {
    const r = lem(['config', 'validate', 'no/such/file.yaml']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toMatch(/^lem: no\/such\/file\.yaml: cannot read the file: no such file\.$/);
  });

  it('an experiment config given where a campaign is expected says so', () => {
    const r = lem(['config', 'generate-grid', join('test', 'fixtures', 'malformed', 'ok.yaml')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/ok\.yaml:1:1: this is an experiment config, not a campaign/);
  });

  it('an unusable manifest path is a clear error, not a crash', () => {
    // A manifest path under a regular file cannot be created.
    const bad = lem(['--db', join(ROOT, 'package.json', 'lem.db'), 'campaign', 'list']);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/^lem: cannot mkdir .*package\.json: (EEXIST|ENOTDIR)/);
  });
});
