/**
 * The `slurm:` block of a campaign (`runtime: slurm`): where Slurm's commands run, the one
 * allocation held for the campaign, how each run's step is started and how its result comes back.
 * Only `login: local`, `container: none` and `results: stdout` have been run end to end (in CI, on a
 * single-node test cluster); the other forms are built and validated but have not run on a cluster.
 */
import { z } from 'zod';

/** `local`, or `ssh://[user@]host[:port]`: where salloc, srun, squeue and scancel run. */
export const SlurmLogin = z.union([
  z.literal('local'),
  z
    .string()
    .regex(/^ssh:\/\/([A-Za-z0-9._-]+@)?[A-Za-z0-9.-]+(:\d{1,5})?$/, 'use local or ssh://user@login-node (optionally :port)')
    .describe('ssh://user@login-node: run Slurm commands there through OpenSSH (not yet tried on a cluster)'),
]);

const slurmWord = z.string().regex(/^[A-Za-z0-9._:,=+-]+$/, 'letters, digits and . _ : , = + - only');

export const SlurmAllocation = z.strictObject({
  gres: z
    .string()
    .regex(/^[A-Za-z0-9_]+(:[A-Za-z0-9_.-]+)*(,[A-Za-z0-9_]+(:[A-Za-z0-9_.-]+)*)*$/, 'a Slurm GRES such as gpu:8 or gpu:a100:4')
    .default('gpu:1')
    .describe('GRES of the allocation held for the campaign (salloc --gres)'),
  time: z
    .string()
    .regex(/^(\d+-)?\d+(:\d{1,2}){0,2}$/, 'a Slurm time limit such as 12:00:00, 90 or 1-00:00:00')
    .optional()
    .describe("time limit of the allocation (salloc --time); default: the partition's"),
  exclusive: z.boolean().default(false).describe('whole nodes (salloc --exclusive)'),
  nodes: z.number().int().min(1).max(1).default(1).describe('nodes in the allocation (only 1 is supported yet)'),
});
export type SlurmAllocation = z.infer<typeof SlurmAllocation>;

export const SlurmContainer = z.union([
  z.literal('none'),
  z.strictObject({ apptainer: z.string().min(1).describe('an Apptainer image (.sif) on the compute nodes: apptainer exec --nv IMAGE …') }),
  z.strictObject({ pyxis: z.string().min(1).describe('an enroot image (.sqsh) or registry reference for pyxis: srun --container-image=IMAGE …') }),
]);
export type SlurmContainer = z.infer<typeof SlurmContainer>;

export const SlurmResults = z.union([
  z.literal('stdout'),
  z.strictObject({ shared: z.string().regex(/^\//, 'an absolute path').describe('a directory at the same path on lem\'s host and on the compute nodes') }),
]);
export type SlurmResults = z.infer<typeof SlurmResults>;

export const SlurmSettings = z.strictObject({
  login: SlurmLogin.default('local'),
  partition: slurmWord.optional().describe('salloc --partition'),
  account: slurmWord.optional().describe('salloc --account'),
  qos: slurmWord.optional().describe('salloc --qos'),
  allocation: SlurmAllocation.default(SlurmAllocation.parse({})),
  gpus_per_run: z
    .number()
    .int()
    .min(0)
    .max(64)
    .default(1)
    .describe("GPUs each run's step asks for (srun --gres=gpu:N); measurement.gpu_ids, when set, needs max(gpu_ids)+1"),
  container: SlurmContainer.default('none'),
  results: SlurmResults.default('stdout'),
  python: z.string().min(1).default('python3').describe('the Python interpreter on the compute nodes'),
  worker_dir: z
    .string()
    .regex(/^\//, 'an absolute path')
    .optional()
    .describe("directory holding lem_worker on the compute nodes (PYTHONPATH); default: this lem's images/worker, or the image's with a container"),
});
export type SlurmSettings = z.infer<typeof SlurmSettings>;
