/**
 * A real single-node Slurm cluster per test file (.ci/slurm-setup.sh start: munged, slurmctld and
 * slurmd as plain processes, fake GPU device nodes made with mknod), reached through SLURM_CONF, and
 * stopped afterwards by the daemons' pid files. Needs Debian's slurmctld, slurmd, slurm-client and
 * munge (.ci/slurm-setup.sh installs them) and root (mknod, slurmd).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '../..');
const DAEMONS = ['slurmd', 'slurmctld', 'munged'] as const;

function onPath(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

const isRoot = process.getuid?.() === 0;

/** A command as root: directly when this is root, else through passwordless sudo (a CI user). */
function asRoot(cmd: string, args: readonly string[]): [string, string[]] {
  return isRoot ? [cmd, [...args]] : ['sudo', ['-n', cmd, ...args]];
}

/** Why these tests cannot run here, or null. */
export const slurmMissing: string | null = !['slurmctld', 'slurmd', 'srun', 'salloc', 'munged'].every(onPath)
  ? 'Slurm is not installed (run .ci/slurm-setup.sh: Debian slurmctld slurmd slurm-client munge)'
  : !isRoot && spawnSync('sudo', ['-n', 'true'], { stdio: 'ignore' }).status !== 0
    ? 'the test cluster needs root or passwordless sudo (mknod for the fake GPUs, slurmd)'
    : null;

/** In CI these tests must run (CI installs Slurm): skipping is only for a developer machine without it. */
export const runSlurmTests = slurmMissing === null || Boolean(process.env['CI']);

export interface Cluster {
  dir: string;
  /** Environment for lem and the Slurm clients: SLURM_CONF of this cluster. */
  env: Record<string, string>;
  gpus: number;
}

export function startCluster(gpus = 4): Cluster {
  if (slurmMissing !== null) throw new Error(`CI is set but ${slurmMissing}`);
  const dir = mkdtempSync(join(tmpdir(), 'lem-slurm-'));
  execFileSync(...asRoot('bash', [join(ROOT, '.ci', 'slurm-setup.sh'), 'start', dir, String(gpus)]), { stdio: ['ignore', 'ignore', 'inherit'] });
  return { dir, env: { SLURM_CONF: join(dir, 'slurm.conf') }, gpus };
}

function alive(pid: number): boolean {
  return existsSync(`/proc/${pid}`);
}

function signal(pid: number, sig: 'TERM' | 'KILL'): void {
  spawnSync(...asRoot('kill', [`-${sig}`, String(pid)]), { stdio: 'ignore' });
}

/** Stops every daemon of the cluster by its pid file (TERM, then KILL), then removes its directory. */
export async function stopCluster(c: Cluster): Promise<void> {
  const pids = DAEMONS.map((d) => join(c.dir, 'run', `${d}.pid`))
    .filter((f) => existsSync(f))
    .map((f) => Number(readFileSync(f, 'utf8').trim()))
    .filter((pid) => pid > 1 && alive(pid));
  for (const pid of pids) signal(pid, 'TERM'); // all at once: each takes a second or two to exit
  for (let i = 0; i < 200 && pids.some(alive); i++) await new Promise((r) => setTimeout(r, 50));
  for (const pid of pids.filter(alive)) signal(pid, 'KILL');
  if (isRoot) rmSync(c.dir, { recursive: true, force: true });
  else spawnSync('sudo', ['-n', 'rm', '-rf', c.dir], { stdio: 'ignore' });
}

/** A Slurm client command against the cluster (squeue, scancel, …); its stdout. */
export function slurm(c: Cluster, cmd: string, args: readonly string[]): string {
  return execFileSync(cmd, args, { env: { ...process.env, ...c.env }, encoding: 'utf8' });
}

/** This user's live jobs named `name`: `JOBID|STATE` lines. */
export function jobsNamed(c: Cluster, name: string): string[] {
  return slurm(c, 'squeue', ['--me', '--noheader', `--name=${name}`, '--format=%i|%T']).split('\n').filter(Boolean);
}

/** This user's live steps: `JOB.STEP|NAME` lines. */
export function liveSteps(c: Cluster): string[] {
  return slurm(c, 'squeue', ['--me', '--noheader', '--steps', '--format=%i|%j']).split('\n').filter(Boolean);
}
