/**
 * No cluster needed: the framed stdout of a step (written by the real worker's framing.py, read by
 * frames.ts), the `slurm:` block of a campaign file (what is accepted, what is a clear error), and
 * the message of a host without Slurm.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CampaignFile } from '../../src/config/campaign.js';
import { parseFrames } from '../../src/runtime/slurm/frames.js';
import { srunArgs, toolSrunArgs } from '../../src/runtime/slurm/step.js';
import { SlurmSettings } from '../../src/config/slurm.js';
import { lem, ROOT, tempDir } from '../helpers/cli.js';

const frame = (name: string, body: string): string => `@@lem-frame/1 ${name} ${Buffer.byteLength(body)} ${createHash('sha256').update(body).digest('hex')}\n${body}\n@@lem-frame-end ${name}\n`;

describe('step output frames', () => {
  it("reads the real worker's frames: config from stdin, result and placement on stdout, its log on stderr", () => {
    const config = { run: { run_id: 'r', experiment_id: 'e', cycle: 1, attempt: 1 }, experiment: { backend: 'calibration', measurement: { idle_baseline_s: 0, min_window_s: 0 }, calibration: { duration_s: 0.1, matrix_size: 16 } } };
    const r = spawnSync('/usr/bin/python3', ['-m', 'lem_worker', 'run', '-', '--result-stdout', '--attempt-token', 'lem-x-p0-a1'], {
      cwd: ROOT,
      input: JSON.stringify(config),
      env: { ...process.env, PYTHONPATH: join(ROOT, 'images', 'worker') },
    });
    expect(r.status, r.stderr.toString()).toBe(0);
    const parsed = parseFrames(r.stdout);
    expect(parsed.problems).toEqual([]);
    expect(parsed.stray.length).toBe(0);
    expect([...parsed.files.keys()]).toEqual(['result.json', 'placement.json']);
    expect(JSON.parse(parsed.files.get('result.json')?.toString() ?? '{}')).toMatchObject({ run_id: 'r', experiment_id: 'e', backend: 'calibration' });
    expect(JSON.parse(parsed.files.get('placement.json')?.toString() ?? '{}')).toMatchObject({ schema: 'lem.placement/1' });
    expect(r.stderr.toString()).toMatch(/wrote \S+\/result\.json/);
  });

  it('keeps stray output for the log, and rejects cut-short, altered and unexpected frames', () => {
    const good = frame('result.json', '{"a": 1}');
    const p = parseFrames(Buffer.from(`hello\n${good}${frame('evil.sh', 'rm -rf /')}`));
    expect(p.files.get('result.json')?.toString()).toBe('{"a": 1}');
    expect(p.files.has('evil.sh')).toBe(false);
    expect(p.stray.toString()).toBe('hello\n');
    expect(p.problems).toEqual(['evil.sh: not a file the orchestrator accepts from a step']);

    const cut = parseFrames(Buffer.from(good.slice(0, good.length - 20)));
    expect(cut.files.size).toBe(0);
    expect(cut.problems[0]).toMatch(/^result\.json: frame cut short/);

    const altered = parseFrames(Buffer.from(good.replace('"a": 1', '"a": 2')));
    expect(altered.files.size).toBe(0);
    expect(altered.problems).toEqual(['result.json: SHA-256 does not match its frame header']);
  });
});

describe('the slurm: block', () => {
  const base = { campaign_name: 'x', configs: ['a.yaml'], runtime: 'slurm' };

  it('fills every default, and accepts the documented forms', () => {
    const c = CampaignFile.parse({ ...base, slurm: {} });
    expect(c.slurm).toEqual({ login: 'local', allocation: { gres: 'gpu:1', exclusive: false, nodes: 1 }, gpus_per_run: 1, container: 'none', results: 'stdout', python: 'python3' });
    const full = CampaignFile.parse({
      ...base,
      slurm: { login: 'ssh://lab@login01:2222', partition: 'gpu', account: 'proj123', allocation: { gres: 'gpu:a100:8', time: '12:00:00', exclusive: true }, container: { apptainer: '/images/lem.sif' }, results: { shared: '/scratch/lem' } },
    });
    expect(full.slurm?.allocation).toEqual({ gres: 'gpu:a100:8', time: '12:00:00', exclusive: true, nodes: 1 });
  });

  it('names the field of a bad value', () => {
    const bad = (slurm: unknown): string[] => {
      const r = CampaignFile.safeParse({ ...base, slurm });
      return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    };
    expect(bad({ login: 'lab@login01' }).join('\n')).toMatch(/slurm\.login/);
    expect(bad({ allocation: { time: 'noon' } })).toEqual(['slurm.allocation.time: a Slurm time limit such as 12:00:00, 90 or 1-00:00:00']);
    expect(bad({ allocation: { nodes: 2 } })[0]).toMatch(/^slurm\.allocation\.nodes/);
    expect(bad({ partition: 'gpu; rm -rf /' })[0]).toMatch(/^slurm\.partition/);
    expect(bad({ container: { docker: 'x' } })[0]).toMatch(/^slurm\.container/);
    expect(bad({ results: { shared: 'relative/dir' } })[0]).toMatch(/^slurm\.results/);
  });

  it('builds the step command for each container form (Apptainer and pyxis have not run on a cluster)', () => {
    const spec = { runId: 'r', experimentId: 'e', cycle: 1, attempt: 1, backend: 'calibration' as const, configPath: '/s/config.json', outDir: '/s', logPath: '/s/worker.log', timeoutS: null, attemptToken: 'lem-c-p0-a1' };
    const bare = srunArgs(SlurmSettings.parse({}), '7', spec, 2, null);
    expect(bare.slice(0, bare.indexOf('--'))).toEqual(['--jobid=7', '--job-name=lem-c-p0-a1', '--nodes=1', '--ntasks=1', '--gres=gpu:2', '--exact', '--quiet']);
    expect(bare.slice(-7)).toEqual(['-m', 'lem_worker', 'run', '-', '--result-stdout', '--attempt-token', 'lem-c-p0-a1']);
    const app = srunArgs(SlurmSettings.parse({ container: { apptainer: '/i/lem.sif' } }), '7', spec, 1, null);
    expect(app.slice(app.indexOf('--') + 1, app.indexOf('--') + 5)).toEqual(['apptainer', 'exec', '--nv', '/i/lem.sif']);
    expect(app).toContain('PYTHONPATH=/opt/lem/worker');
    const pyxis = srunArgs(SlurmSettings.parse({ container: { pyxis: '/i/lem.sqsh' }, results: { shared: '/scratch' } }), '7', spec, 0, '/scratch/runs/x');
    expect(pyxis).toContain('--container-image=/i/lem.sqsh');
    expect(pyxis).toContain('--gres=none');
    expect(pyxis.slice(-5)).toEqual(['/scratch/runs/x/config.json', '--out', '/scratch/runs/x', '--attempt-token', 'lem-c-p0-a1']);
    // A worker tool (the thermal probe) is a step of the same allocation running `lem_worker thermal`.
    const tool = toolSrunArgs(SlurmSettings.parse({}), '7', 'lem-tool-lem-c', 1, ['thermal', '--json']);
    expect(tool.slice(0, tool.indexOf('--'))).toEqual(['--jobid=7', '--job-name=lem-tool-lem-c', '--nodes=1', '--ntasks=1', '--gres=gpu:1', '--exact', '--quiet']);
    expect(tool.slice(-4)).toEqual(['-m', 'lem_worker', 'thermal', '--json']);
  });
});

describe('a host without Slurm', () => {
  it('says which command is missing and what to install, with no stack trace', () => {
    const dir = tempDir();
    const file = join(dir, 'c.yaml');
    writeFileSync(file, 'campaign_name: noslurm\nconfigs: [{backend: calibration}]\nruntime: slurm\nthermal_gap: 0\n');
    const r = lem(['--state', join(dir, 'state'), 'campaign', 'run', file], { env: { PATH: '/nonexistent' } });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/lem: runtime slurm: squeue .* could not run on this host \(spawn squeue ENOENT\); is Slurm's client installed there \(Debian: slurm-client\)/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});
