/**
 * Every malformed input, through the real CLI, for each command that reads a campaign or config:
 * `config validate`, `config generate-grid`, `campaign run --dry-run` and `campaign run`. Each gives
 * exit 2, a first line naming the file (and line:column and field where they apply), no stack
 * trace, and `campaign run` creates nothing (no manifest, no run directory).
 * Fixtures: test/fixtures/malformed/; special files (pipe, device, directory, oversize) are made here.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LEM, lem, ROOT, tempDir } from '../helpers/cli.js';

const DIR = join(ROOT, 'test', 'fixtures', 'malformed');
const rel = (f: string): string => join('test', 'fixtures', 'malformed', f);

/**
 * The first line of `config validate`'s message (after "lem: "), as a pattern; `campaign` is what
 * the campaign commands say when it differs (an experiment config is not a campaign, say).
 */
interface Expect {
  first: RegExp;
  campaign?: RegExp;
  /** Every problem `config validate` must list, in order (for files with several). */
  all?: RegExp[];
}
const NOT_A_CAMPAIGN = /:\d+:1: this is an experiment config, not a campaign/;
const MODEL_RULE = /:3:7: field 'model\.id': a model id is a Hugging Face id \('name' or 'org\/name'/;

const TABLE: Record<string, Expect> = {
  '01-unclosed-flow.yaml': { first: /:3:\d+: this is not valid YAML/ },
  '02-tab-indent.yaml': { first: /:3:\d+: this is not valid YAML: .*Tabs/ },
  '03-duplicate-key.yaml': { first: /:3:\d+: this is not valid YAML: .*unique/ },
  '04-unknown-backend.yaml': { first: /:2:\d+: field 'backend': unknown backend "onnx".*"pytorch"/, campaign: NOT_A_CAMPAIGN },
  '05-wrong-type-batch-size.yaml': { first: /:5:\d+: field 'batching\.batch_size': expected number, got a string "eight"/, campaign: NOT_A_CAMPAIGN },
  '06-negative-cycles.yaml': { first: /:3:\d+: field 'cycles': must be at least 1/ },
  '07-unknown-field.yaml': { first: /:3:\d+: field 'modle': unknown field; did you mean 'model'\?/, campaign: NOT_A_CAMPAIGN, all: [/field 'modle': unknown field/, /field 'model': this field is required/] },
  '08-missing-model.yaml': { first: /:1:\d+: field 'model': this field is required/, campaign: NOT_A_CAMPAIGN },
  '09-campaign-no-experiments.yaml': { first: /:1:\d+: a campaign needs experiments/ },
  '10-campaign-configs-and-grid.yaml': { first: /:3:\d+: field 'base_config': .*not both/ },
  '11-campaign-missing-config-file.yaml': { first: /:4:\d+: field 'configs\.1': refers to .*does-not-exist\.yaml, which does not exist/ },
  '12-grid-wrong-value-type.yaml': { first: /:6:\d+: field 'batching\.batch_size': expected number, got a string "big"/ },
  '13-grid-unknown-key.yaml': { first: /:6:\d+: field 'batchsize': unknown field/ },
  '14-grid-every-combination-invalid.yaml': { first: /:6:\d+: the campaign expands to no valid experiment.*bitsandbytes/ },
  '15-bad-structure.yaml': { first: /:3:\d+: field 'structure': must be one of "interleaved", "shuffled", "grouped"/ },
  '16-bad-runtime.yaml': { first: /:3:\d+: field 'runtime': must be one of "local", "docker"/ },
  '17-empty-file.yaml': { first: /:1:\d+: an experiment config must be a YAML mapping .*not empty/, campaign: /:1:\d+: a campaign file must be a YAML mapping .*not empty/ },
  '18-top-level-list.yaml': { first: /:1:\d+: an experiment config must be a YAML mapping .*not a list/, campaign: /:1:\d+: a campaign file must be a YAML mapping .*not a list/ },
  '19-bad-precision.yaml': { first: /:3:\d+: field 'precision': must be one of "fp32", "fp16", "bf16", "fp8"/, campaign: NOT_A_CAMPAIGN },
  '20-vary-not-a-list.yaml': { first: /:4:\d+: field 'vary\.calibration\.matrix_size': expected array/ },
  '21-campaign-name-with-space.yaml': { first: /:1:\d+: field 'campaign_name': use letters, digits/ },
  '22-top-p-out-of-range.yaml': { first: /:5:\d+: field 'decoder\.top_p': must be at most 1/, campaign: NOT_A_CAMPAIGN },
  '23-missing-base-config-file.yaml': { first: /:2:\d+: field 'base_config': refers to .*, which does not exist/ },
  '24-fp8-on-pytorch.yaml': { first: /:3:\d+: field 'precision': fp8 is not supported/, campaign: NOT_A_CAMPAIGN },
  '25-undefined-alias.yaml': { first: /:3:5: the alias \*nope refers to no anchor &nope/ },
  '26-alias-bomb.yaml': { first: /:3:\d+: the \d+ aliases in this file .* at most 100 alias expansions/ },
  '27-grid-ten-million.yaml': { first: /:4:\d+: the grid expands to up to 10,000,000 experiment\(s\) × 3 cycle\(s\) = 30,000,000 runs, more than the limit of 100,000/ },
  '28-thousand-experiments-by-ten-thousand-cycles.yaml': { first: /:5:\d+: the grid expands to up to 1,000 experiment\(s\) × 10,000 cycle\(s\) = 10,000,000 runs, more than the limit of 100,000.*max_runs/ },
  '29-campaign-name-too-long.yaml': { first: /:1:\d+: field 'campaign_name': must be at most 100 characters/ },
  '30-model-id-newline.yaml': { first: MODEL_RULE, campaign: NOT_A_CAMPAIGN },
  '31-model-id-nul.yaml': { first: MODEL_RULE, campaign: NOT_A_CAMPAIGN },
  '32-model-id-subshell.yaml': { first: MODEL_RULE, campaign: NOT_A_CAMPAIGN },
  '33-model-id-dotdot.yaml': { first: MODEL_RULE, campaign: NOT_A_CAMPAIGN },
  '34-model-path-missing.yaml': { first: /:3:7: field 'model\.id': the local model path \/nonexistent\/lem-test\/model does not exist/, campaign: NOT_A_CAMPAIGN },
  '35-infinite-number.yaml': { first: /:3:\d+: field 'thermal_gap': not a finite number \(got \.inf\)/ },
  '36-nan-number.yaml': { first: /:3:\d+: field 'calibration\.duration_s': not a finite number \(got \.nan\)/, campaign: NOT_A_CAMPAIGN },
  '37-misspelt-campaign-name.yaml': { first: /:1:\d+: field 'campain_name': unknown field; did you mean 'campaign_name'\?/, all: [/'campain_name': unknown field/, /'campaign_name': this field is required/] },
  '38-two-documents.yaml': { first: /:3:1: this file holds more than one YAML document/ },
  '39-empty-vary-key.yaml': { first: /:4:\d+: field 'vary': a key under vary is empty/ },
  '40-vary-empty.yaml': { first: /:3:\d+: field 'vary': vary is empty/ },
  '41-over-max-runs.yaml': { first: /:4:\d+: the campaign lists 2 experiment\(s\) × 3 cycle\(s\) = 6 runs, more than the limit of 5/ },
  '42-three-problems.yaml': {
    first: /:3:\d+: field 'precison': unknown field; did you mean 'precision'\?/,
    campaign: NOT_A_CAMPAIGN,
    all: [/:3:\d+: field 'precison'/, /:5:\d+: field 'batching\.batch_size': must be greater than 0/, /:6:\d+: field 'max_output_tokens': expected number, got a string "many"/],
  },
  // A campaign-level problem does not hide the problems of its listed configs: one pass reports all.
  // The same for a grid: base and vary problems beside the campaign's, each once (not once per combination).
  '44-grid-campaign-base-and-vary-problems.yaml': {
    first: /:11:\d+: field 'thermal_gap': must be at least 0/,
    all: [/:11:\d+: field 'thermal_gap'/, /:6:\d+: field 'base_config\.bogus': unknown field/, /:9:21: field 'precision': must be one of/, /:8:28: field 'batching\.batch_size': must be greater than 0/],
  },
  '43-campaign-and-config-problems.yaml': {
    first: /:8:\d+: field 'cycles': must be at least 1/,
    all: [/:8:\d+: field 'cycles'/, /:6:\d+: field 'configs\.0\.bogus': unknown field/, /:5:\d+: field 'configs\.0\.batching\.batch_size': must be greater than 0/, /:7:\d+: field 'configs\.1\.backend': unknown backend "vlm"/],
  },
};

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** At most this many CLI processes at once (the table is ~170 runs on a small shared machine). */
const PARALLEL = 3;
let running = 0;
const waiting: Array<() => void> = [];
async function slot<T>(fn: () => Promise<T>): Promise<T> {
  if (running >= PARALLEL) await new Promise<void>((go) => waiting.push(go));
  running++;
  try {
    return await fn();
  } finally {
    running--;
    waiting.shift()?.();
  }
}

/** The CLI as a user runs it, asynchronously so that the table runs a few at a time. */
function lemAsync(args: readonly string[]): Promise<Run> {
  return slot(() => spawnLem(args));
}

function spawnLem(args: readonly string[]): Promise<Run> {
  return new Promise((done) => {
    const p = spawn(process.execPath, [LEM, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    p.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), 120_000);
    p.on('close', (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr });
    });
  });
}

function expectClean(r: Run, file: string, first: RegExp): void {
  expect(r.code, r.stderr).toBe(2);
  expect(r.stderr).not.toMatch(/\n\s+at |Error:|node:internal|internal error/);
  const line = r.stderr.split('\n')[0] ?? '';
  expect(line.startsWith(`lem: ${file}`), line).toBe(true);
  expect(line).toMatch(first);
}

const files = readdirSync(DIR).filter((f) => /^\d\d-/.test(f)).sort();

describe('malformed inputs, every command (real CLI)', () => {
  let state: string;
  beforeAll(() => {
    state = tempDir('lem-malformed-');
  });

  it('has a table entry for every fixture, and at least 40 fixtures', () => {
    expect(files.length).toBeGreaterThanOrEqual(40);
    expect(files.filter((f) => !(f in TABLE))).toEqual([]);
  });

  for (const file of files) {
    it.concurrent(`${file}: exit 2, a located first line, no stack trace, nothing created`, async () => {
      const want = TABLE[file];
      if (!want) throw new Error(`no expectation for ${file}`);
      const path = rel(file);
      const stateDir = join(state, file);
      const [validate, grid, dry, run] = await Promise.all([
        lemAsync(['config', 'validate', path]),
        lemAsync(['config', 'generate-grid', path]),
        lemAsync(['--state', stateDir, 'campaign', 'run', '--dry-run', path]),
        lemAsync(['--state', stateDir, 'campaign', 'run', path]),
      ]);
      expect(validate.stdout).toBe('');
      expectClean(validate, path, want.first);
      for (const r of [grid, dry, run]) expectClean(r, path, want.campaign ?? want.first);
      if (want.all) {
        const lines = validate.stderr.trim().split('\n');
        want.all.forEach((re, i) => expect(lines[i]).toMatch(re));
        expect(lines[lines.length - 1]).toMatch(new RegExp(`${want.all.length} problems in`));
      } else {
        expect(validate.stderr.trim().split('\n')).toHaveLength(1);
      }
      // Nothing created: no manifest, no run directory, not even the state directory.
      expect(existsSync(stateDir)).toBe(false);
    }, 900_000);
  }

  it('config validate --json lists every problem as {valid:false, errors[]}', () => {
    const r = lem(['config', 'validate', '--json', rel('42-three-problems.yaml')]);
    expect(r.code).toBe(2);
    const out = JSON.parse(r.stdout) as { valid: boolean; errors: Array<{ file: string; line: number; column: number; field: string; message: string }> };
    expect(out.valid).toBe(false);
    expect(out.errors.map((e) => [e.line, e.field])).toEqual([
      [3, 'precison'],
      [5, 'batching.batch_size'],
      [6, 'max_output_tokens'],
    ]);
    expect(out.errors[0]?.message).toMatch(/did you mean 'precision'/);
    const ok = lem(['config', 'validate', '--json', rel('ok.yaml')]);
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ valid: true, errors: [] });
  });

  it('--max-runs raises the limit: the same campaign is accepted', () => {
    const r = lem(['config', 'validate', '--max-runs', '6', rel('41-over-max-runs.yaml')]);
    expect(r.code, r.stderr).toBe(0);
    const bad = lem(['config', 'validate', '--max-runs', 'lots', rel('ok.yaml')]);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim()).toBe("lem: --max-runs expects a whole number of at least 1, got 'lots'.");
  });

  it('a model given as an existing local path is accepted', () => {
    const dir = tempDir('lem-model-');
    mkdirSync(join(dir, 'tiny-model'));
    const file = join(dir, 'exp.yaml');
    writeFileSync(file, `backend: pytorch\nmodel:\n  id: ${join(dir, 'tiny-model')}\n`);
    expect(lem(['config', 'validate', file]).code).toBe(0);
    writeFileSync(file, 'backend: pytorch\nmodel:\n  id: meta-llama/Llama-3.2-1B\n');
    expect(lem(['config', 'validate', file]).code).toBe(0);
  });
});

describe('files that are not regular files, or too big (real CLI)', () => {
  const dir = tempDir('lem-special-');
  const pipe = join(dir, 'pipe.yaml');
  const big = join(dir, 'big.yaml');
  beforeAll(() => {
    execFileSync('mkfifo', [pipe]);
    mkdirSync(join(dir, 'dir.yaml'));
    writeFileSync(big, `# ${'x'.repeat(1024 * 1024 + 10)}\nbackend: calibration\n`);
  });
  afterAll(() => undefined);

  const cases: Array<[string, string, RegExp]> = [
    ['a named pipe (never hangs)', pipe, /cannot read the file: is a named pipe, not a regular file\.$/],
    ['a device', '/dev/zero', /cannot read the file: is a device, not a regular file\.$/],
    ['a directory', join(dir, 'dir.yaml'), /cannot read the file: is a directory, not a file\.$/],
    ['a file over the size limit', big, /cannot read the file: it is \d+ bytes, more than the 1048576 bytes a config or campaign file may have\.$/],
    ['a missing file', 'no/such/file.yaml', /^lem: no\/such\/file\.yaml: cannot read the file: no such file\.$/],
  ];
  for (const [what, path, says] of cases) {
    it.concurrent(`${what}: exit 2 with the reason, for validate and campaign run`, async () => {
      const state = join(dir, 'state-' + what.replace(/\W+/g, '-'));
      const [v, r] = await Promise.all([lemAsync(['config', 'validate', path]), lemAsync(['--state', state, 'campaign', 'run', path])]);
      for (const x of [v, r]) {
        expect(x.code).toBe(2);
        expect(x.stderr.trim().split('\n')).toHaveLength(1);
        expect(x.stderr.trim()).toMatch(says);
      }
      expect(existsSync(state)).toBe(false);
    }, 900_000);
  }
});

describe('other CLI input errors', () => {
  it('an experiment config given where a campaign is expected says so', () => {
    const r = lem(['config', 'generate-grid', rel('ok.yaml')]);
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
