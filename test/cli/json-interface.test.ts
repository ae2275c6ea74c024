/**
 * The `--json` interface through the real CLI: every document is an object whose first key is
 * `schema: "lem.<command>/1"` and whose keys are all snake_case, for the read commands on stored
 * campaigns (results show/compare, validate, campaign list/status, state check, config validate,
 * a dry run's plan); and the key conversion itself.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { snakeKey, snakeKeys, verbatim } from '../../src/cli/json.js';
import { lem, tempDir } from '../helpers/cli.js';
import { storeCampaign } from '../helpers/stored-campaign.js';

const runs = (energy: readonly number[]) => energy.map((e, i) => ({ energy_gpu_j: e, output_tokens_per_s: 50 + i }));

/** Every key of every object in the document, with its path. */
function keys(v: unknown, path = '$'): string[] {
  if (Array.isArray(v)) return v.flatMap((x, i) => keys(x, `${path}[${i}]`));
  if (typeof v === 'object' && v !== null) return Object.entries(v).flatMap(([k, x]) => [`${path}.${k}`, ...keys(x, `${path}.${k}`)]);
  return [];
}
const camel = (doc: unknown) => keys(doc).filter((p) => /[a-z][A-Z]/.test(p.slice(p.lastIndexOf('.') + 1)));

let state = '';
beforeAll(() => {
  state = tempDir('lem-json-');
  storeCampaign(state, 'base', [{ id: 'aaaaaaaaaaaa', name: 'a', runs: runs([100, 101, 99, 100.5, 99.5, 100]) }]);
  storeCampaign(state, 'other', [{ id: 'aaaaaaaaaaaa', name: 'a', runs: runs([110, 111, 109, 110.5, 109.5, 110]) }]);
});

describe('--json documents', () => {
  const cases: [string, string[], number[]][] = [
    ['campaign.list', ['campaign', 'list', '--json'], [0]],
    ['campaign.status', ['campaign', 'status', 'base', '--json'], [0]],
    ['results.show', ['results', 'show', 'base', '--json'], [0]],
    ['results.compare', ['results', 'compare', 'base', 'other', '--json'], [0]],
    ['validate', ['validate', 'base', 'other', '--json'], [0, 1, 3]],
    ['state.check', ['state', 'check', '--json'], [0]],
    ['config.validate', ['config', 'validate', 'campaigns/quickstart.yaml', '--json'], [0]],
    ['config.generate_grid', ['config', 'generate-grid', 'campaigns/llm-grid.example.yaml', '--json'], [0]],
    ['config.params', ['config', 'params', 'vllm', '--json'], [0]],
    ['config.params.coverage', ['config', 'params', 'tensorrt', '--coverage', '--json'], [0]],
    ['campaign.dry_run', ['campaign', 'run', 'campaigns/quickstart.yaml', '--dry-run', '--json'], [0]],
  ];
  for (const [schema, args, codes] of cases) {
    it(`lem ${args.join(' ')}: schema lem.${schema}/1, snake_case keys only`, () => {
      const r = lem(['--state', state, ...args]);
      expect(codes, r.stderr).toContain(r.code);
      const doc = JSON.parse(r.stdout) as Record<string, unknown>;
      expect(Object.keys(doc)[0]).toBe('schema');
      expect(doc['schema']).toBe(`lem.${schema}/1`);
      expect(camel(doc)).toEqual([]);
    });
  }
});

describe('snake_case conversion at the CLI boundary', () => {
  it('converts lowerCamel identifiers and leaves other keys (env names, data names) alone', () => {
    expect(snakeKey('flaggedByGate')).toBe('flagged_by_gate');
    expect(snakeKey('ratioCi')).toBe('ratio_ci');
    expect(snakeKey('experimentId')).toBe('experiment_id');
    expect(snakeKey('HF_HOME')).toBe('HF_HOME');
    expect(snakeKey('llama-7b')).toBe('llama-7b');
    expect(snakeKey('ci95')).toBe('ci95');
    expect(snakeKey('already_snake')).toBe('already_snake');
  });
  it('converts deeply, through arrays, and drops undefined fields', () => {
    expect(snakeKeys({ aB: [{ cD: 1, eF: undefined }], g: { hI: null } })).toEqual({ a_b: [{ c_d: 1 }], g: { h_i: null } });
  });
  it('leaves a verbatim subtree (the user\'s own config) as it is', () => {
    expect(snakeKeys({ runId: 1, config: verbatim({ backend_options: { maxSeqLen: 4 } }) })).toEqual({ run_id: 1, config: { backend_options: { maxSeqLen: 4 } } });
  });
});
