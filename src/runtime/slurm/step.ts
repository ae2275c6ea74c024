/**
 * The srun command of one run: a step of the campaign's allocation, named by the attempt token,
 * with `--exact` and its own GPUs (`--gres=gpu:N`), running the worker bare, under Apptainer, or
 * in a pyxis container. With `results: stdout` the config goes in on stdin and the result files
 * come back framed on stdout; with `results: {shared: DIR}` both travel through DIR.
 */
import type { SlurmSettings } from '../../config/slurm.js';
import { workerDir } from '../../util/paths.js';
import type { RunSpec } from '../types.js';

/** Where, inside a container image, the worker is installed (images/*: /opt/lem/worker). */
export const IMAGE_WORKER_DIR = '/opt/lem/worker';

/** GPUs a run's step asks for: enough for measurement.gpu_ids when set, else slurm.gpus_per_run. */
export function stepGpus(s: SlurmSettings, gpuIds: readonly number[] | undefined): number {
  return gpuIds && gpuIds.length > 0 ? Math.max(s.gpus_per_run, Math.max(...gpuIds) + 1) : s.gpus_per_run;
}

/** `srun …` arguments for one run; `sharedDir` is the run's directory under results.shared, if any. */
export function srunArgs(s: SlurmSettings, jobId: string, spec: RunSpec, gpus: number, sharedDir: string | null): string[] {
  const io = sharedDir === null ? ['-', '--result-stdout'] : [`${sharedDir}/config.json`, '--out', sharedDir];
  return stepArgs(s, jobId, spec.attemptToken, gpus, ['run', ...io, '--attempt-token', spec.attemptToken], [`LEM_ATTEMPT_TOKEN=${spec.attemptToken}`], sharedDir);
}

/**
 * `srun …` arguments for a worker tool (`thermal --json`, `calibrate --json`) as a short step of the
 * allocation: its output on stdout as the tool prints it, no result files.
 */
export function toolSrunArgs(s: SlurmSettings, jobId: string, name: string, gpus: number, toolArgs: readonly string[]): string[] {
  return stepArgs(s, jobId, name, gpus, toolArgs, [], null);
}

function stepArgs(s: SlurmSettings, jobId: string, name: string, gpus: number, workerArgs: readonly string[], extraEnv: readonly string[], sharedDir: string | null): string[] {
  const worker = s.worker_dir ?? (s.container === 'none' ? workerDir() : IMAGE_WORKER_DIR);
  const env = [`PYTHONPATH=${worker}`, 'PYTHONUNBUFFERED=1', ...extraEnv];
  const lockDir = process.env['LEM_LOCK_DIR'];
  if (lockDir) env.push(`LEM_LOCK_DIR=${lockDir}`);
  const workerCmd = ['env', ...env, s.python, '-m', 'lem_worker', ...workerArgs];
  const container = s.container;
  const inContainer =
    container !== 'none' && 'apptainer' in container
      ? ['apptainer', 'exec', ...(gpus > 0 ? ['--nv'] : []), ...(sharedDir ? ['--bind', sharedDir] : []), container.apptainer, ...workerCmd]
      : workerCmd;
  const pyxis = container !== 'none' && 'pyxis' in container ? [`--container-image=${container.pyxis}`, ...(sharedDir ? [`--container-mounts=${sharedDir}`] : [])] : [];
  return [
    `--jobid=${jobId}`,
    `--job-name=${name}`,
    '--nodes=1',
    '--ntasks=1',
    gpus > 0 ? `--gres=gpu:${gpus}` : '--gres=none',
    '--exact',
    '--quiet',
    ...pyxis,
    '--',
    ...inContainer,
  ];
}
