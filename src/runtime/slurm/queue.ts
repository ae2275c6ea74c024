/**
 * What Slurm knows about a campaign: its allocation (a job named `lem-<campaign id>`) and its runs'
 * steps (named by their attempt tokens), through squeue; and how they end, through scancel. These
 * names are how a resume after a kill -9 finds both.
 */
import type { SlurmSettings } from '../../config/slurm.js';
import { LemError } from '../../util/errors.js';
import type { CommandResult, SlurmShell } from './shell.js';

export interface Allocation {
  jobId: string;
  /** squeue's state: RUNNING, PENDING, CONFIGURING, … */
  state: string;
}

export interface Step {
  /** `JOB.STEP` */
  id: string;
  name: string;
  nodes: string;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The job name of a campaign's allocation. */
export function allocationName(campaignId: string): string {
  return `lem-${campaignId}`;
}

/** A Slurm command that failed: its stderr as a clear message (or that it is not installed). */
export function slurmFailure(shell: SlurmShell, what: string, r: CommandResult): LemError {
  if (r.spawnError) {
    return new LemError(`runtime slurm: ${what} could not run on ${shell.where} (${r.spawnError}); is Slurm's client installed there (Debian: slurm-client) and SLURM_CONF pointing at the cluster?`);
  }
  const why = r.stderr.trim().split('\n').slice(-3).join(' ') || `exit code ${r.code}`;
  return new LemError(`runtime slurm: ${what} failed on ${shell.where}: ${why}`);
}

async function squeue(shell: SlurmShell, args: readonly string[]): Promise<string[]> {
  const r = await shell.run('squeue', ['--me', '--noheader', ...args]);
  if (r.code !== 0) throw slurmFailure(shell, `squeue ${args.join(' ')}`, r);
  return r.stdout.split('\n').filter((l) => l.trim() !== '');
}

/** This user's live jobs named `name` (pending, running, configuring, completing). */
export async function findAllocations(shell: SlurmShell, name: string): Promise<Allocation[]> {
  const lines = await squeue(shell, [`--name=${name}`, '--format=%i|%T']);
  return lines.map((l) => {
    const [jobId = '', state = ''] = l.trim().split('|');
    return { jobId, state };
  });
}

/** This user's live steps (in every job of theirs). */
export async function listSteps(shell: SlurmShell): Promise<Step[]> {
  const lines = await squeue(shell, ['--steps', '--format=%i|%j|%N']);
  return lines.map((l) => {
    const [id = '', name = '', nodes = ''] = l.trim().split('|');
    return { id, name, nodes };
  });
}

/** `salloc --no-shell` for the campaign; resolves with the job id once granted. */
export async function allocate(shell: SlurmShell, s: SlurmSettings, name: string): Promise<string> {
  const a = s.allocation;
  const args = [
    '--no-shell',
    `--job-name=${name}`,
    `--nodes=${a.nodes}`,
    `--gres=${a.gres}`,
    ...(a.time ? [`--time=${a.time}`] : []),
    ...(a.exclusive ? ['--exclusive'] : []),
    ...(s.partition ? [`--partition=${s.partition}`] : []),
    ...(s.account ? [`--account=${s.account}`] : []),
    ...(s.qos ? [`--qos=${s.qos}`] : []),
  ];
  // No timeout: a busy cluster queues the allocation, and lem waits for it like any Slurm user.
  const r = await shell.run('salloc', args, 0);
  const id = /Granted job allocation (\d+)/.exec(r.stderr)?.[1];
  if (r.code !== 0 || id === undefined) throw slurmFailure(shell, `salloc ${args.join(' ')}`, r);
  return id;
}

/** Waits until a pending allocation runs; its state then, or null when it is gone. */
export async function waitRunning(shell: SlurmShell, name: string, jobId: string): Promise<string | null> {
  for (;;) {
    const a = (await findAllocations(shell, name)).find((x) => x.jobId === jobId);
    if (!a) return null;
    if (a.state === 'RUNNING') return a.state;
    await sleep(1000);
  }
}

/** scancel a job or a step (`J` or `J.S`), with a signal (steps: TERM first, then the default, KILL). */
export async function cancel(shell: SlurmShell, id: string, signal?: 'TERM'): Promise<void> {
  const r = await shell.run('scancel', [...(signal ? [`--signal=${signal}`] : []), id]);
  // A job or step that ended meanwhile is not an error.
  if (r.code !== 0 && !/Invalid job id|already completing or completed|does not exist/i.test(r.stderr)) throw slurmFailure(shell, `scancel ${id}`, r);
}

/** Waits until none of these steps is listed any more; the ones still there after `ms`. */
export async function waitStepsGone(shell: SlurmShell, ids: readonly string[], ms: number): Promise<string[]> {
  const deadline = Date.now() + ms;
  for (;;) {
    const live = new Set((await listSteps(shell)).map((s) => s.id));
    const left = ids.filter((id) => live.has(id));
    if (left.length === 0 || Date.now() >= deadline) return left;
    await sleep(200);
  }
}

/** Waits until the job has left the queue (or at least is no longer running); true when it did. */
export async function waitJobGone(shell: SlurmShell, name: string, jobId: string, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    const a = (await findAllocations(shell, name)).find((x) => x.jobId === jobId);
    if (!a || (a.state !== 'RUNNING' && a.state !== 'PENDING' && a.state !== 'CONFIGURING')) return true;
    if (Date.now() >= deadline) return false;
    await sleep(200);
  }
}
