/**
 * `runtime: slurm`. The long-running service is one allocation held for the campaign
 * (`salloc --no-shell`, job name `lem-<campaign id>`); each run is a step of it
 * (`srun --jobid=J --job-name=<attempt token> --gres=gpu:N --exact …`): config on stdin, result
 * files framed on stdout, log on stderr, exit code passed on, `scancel J.STEP` on a timeout or an
 * abort. Slurm's GRES bookkeeping gives each step its own GPUs; the worker records which (by UUID,
 * where NVML can tell) in placement.json. The allocation is released at the end, on Ctrl-C, and
 * when lem exits; after a kill -9 a resume finds it (by job name) and the orphan steps (by token).
 */
import { appendFileSync, chmodSync, closeSync, fchmodSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { SlurmSettings } from '../../config/slurm.js';
import { EXIT_FAILED_RUNS, LemError } from '../../util/errors.js';
import { isCampaignToken, type DispatchOutcome, type LiveWorker, type Runtime, type RunSpec, type WorkerToolResult } from '../types.js';
import { parseFrames } from './frames.js';
import { allocate, allocationName, cancel, findAllocations, listSteps, waitJobGone, waitRunning, waitStepsGone, type Step } from './queue.js';
import { slurmShell, type SlurmShell } from './shell.js';
import { srunArgs, stepGpus, toolSrunArgs } from './step.js';

export interface SlurmRuntimeOptions {
  log?: (message: string) => void;
  /** Seconds between scancel --signal=TERM and the final scancel of a step. */
  killGraceS?: number;
  /** Replaces the shell built from `login` (tests). */
  shell?: SlurmShell;
}

const LIVE = new Set(['RUNNING', 'PENDING', 'CONFIGURING']);
const MAX_STDOUT = 256 * 1024 * 1024;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The `handle` of a run: `slurm:<job id>:<attempt token>`. */
export function stepHandle(jobId: string, token: string): string {
  return `slurm:${jobId}:${token}`;
}

export function createSlurmRuntime(settings: SlurmSettings, opts: SlurmRuntimeOptions = {}): Runtime {
  const shell = opts.shell ?? slurmShell(settings.login);
  const log = opts.log ?? ((): void => undefined);
  const graceMs = (opts.killGraceS ?? 5) * 1000;
  let held: { jobId: string; name: string } | null = null;
  let workspaceRoot = '';
  // A lem that exits without shutdown (a second Ctrl-C, an uncaught error) still releases its allocation.
  const releaseOnExit = (): void => {
    if (held) shell.runSync('scancel', [held.jobId]);
  };

  /** The steps carrying this attempt token, polled briefly (srun may not have created it yet). */
  async function stepsOf(token: string, tries: number): Promise<Step[]> {
    for (let i = 0; ; i++) {
      const steps = (await listSteps(shell)).filter((s) => s.name === token);
      if (steps.length > 0 || i + 1 >= tries) return steps;
      await sleep(300);
    }
  }

  /** scancel --signal=TERM, the grace, then scancel; the ids still listed after that. */
  async function cancelSteps(ids: readonly string[]): Promise<string[]> {
    for (const id of ids) await cancel(shell, id, 'TERM');
    const left = await waitStepsGone(shell, ids, graceMs);
    for (const id of left) await cancel(shell, id);
    return waitStepsGone(shell, left, 15_000);
  }

  async function findWorkers(campaignId: string): Promise<LiveWorker[]> {
    return (await listSteps(shell))
      .filter((s) => isCampaignToken(s.name, campaignId))
      .map((s) => ({ token: s.name, pid: 0, where: `Slurm step ${s.id} on ${s.nodes}` }));
  }

  /** One run as a step of allocation `jobId`: srun, its framed output, scancel on timeout or abort. */
  function runStep(spec: RunSpec, signal: AbortSignal, onStarted: (handle: string) => void, jobId: string): Promise<DispatchOutcome> {
    const config = readFileSync(spec.configPath);
    const gpuIds = (JSON.parse(config.toString('utf8')) as { experiment?: { measurement?: { gpu_ids?: number[] } } }).experiment?.measurement?.gpu_ids;
    const shared = typeof settings.results === 'object' ? join(settings.results.shared, relative(workspaceRoot, spec.outDir)) : null;
    if (shared !== null) {
      mkdirSync(shared, { recursive: true });
      writeFileSync(join(shared, 'config.json'), config);
    }
    const logFd = openSync(spec.logPath, 'a', 0o644);
    fchmodSync(logFd, 0o644);
    const child = shell.spawn('srun', srunArgs(settings, jobId, spec, stepGpus(settings, gpuIds), shared), logFd);
    return new Promise<DispatchOutcome>((resolve, reject) => {
      const out: Buffer[] = [];
      let ended = false; // 'error' and 'close' may both come
      let outBytes = 0;
      let stop: { reason: string; timedOut: boolean; cancelled: string[] } | null = null;
      let timer: NodeJS.Timeout | undefined;
      let killTimer: NodeJS.Timeout | undefined;
      // The step's id, learnt as soon as squeue lists it, so a timeout or Ctrl-C needs only scancel.
      let stepIds: string[] = [];
      let closed = false;
      void (async () => {
        for (let i = 0; i < 100 && !closed && stepIds.length === 0; i++) {
          stepIds = (await listSteps(shell)).filter((x) => x.name === spec.attemptToken).map((x) => x.id);
          if (stepIds.length === 0) await sleep(200);
        }
      })().catch(() => undefined);
      const requestStop = (reason: string, timedOut: boolean): void => {
        if (stop) return;
        const s = { reason, timedOut, cancelled: [] as string[] };
        stop = s;
        killTimer = setTimeout(() => child.kill('SIGKILL'), graceMs + 20_000);
        void (async () => {
          const ids = stepIds.length > 0 ? stepIds : (await stepsOf(spec.attemptToken, 30)).map((x) => x.id);
          if (ids.length === 0) {
            child.kill('SIGTERM'); // no step yet: srun itself gives up creating it
            return;
          }
          s.cancelled = ids;
          const left = await cancelSteps(ids);
          if (left.length > 0) log(`step(s) ${left.join(', ')} still listed after scancel`);
        })().catch((e: unknown) => {
          log(`could not cancel the step of ${spec.attemptToken}: ${e instanceof Error ? e.message : String(e)}`);
          child.kill('SIGKILL');
        });
      };
      const onAbort = (): void => requestStop('interrupted', false);
      child.stdin.on('error', () => undefined); // a step that never reads its stdin
      child.stdin.end(shared === null ? config : undefined);
      child.stdout.on('data', (d: Buffer) => {
        outBytes += d.length;
        if (outBytes <= MAX_STDOUT) out.push(d);
      });
      child.once('spawn', () => onStarted(stepHandle(jobId, spec.attemptToken)));
      const end = (): boolean => {
        if (ended) return false;
        ended = closed = true;
        clearTimeout(timer);
        clearTimeout(killTimer);
        signal.removeEventListener('abort', onAbort);
        return true;
      };
      child.once('error', (err) => {
        if (!end()) return;
        closeSync(logFd);
        resolve({ exitCode: null, timedOut: false, failureReason: `srun could not start on ${shell.where}: ${err.message}` });
      });
      child.once('close', (code, sig) => {
        if (!end()) return;
        try {
          if (shared === null) keepFrames(Buffer.concat(out), spec, logFd, outBytes > MAX_STDOUT);
          else copyShared(shared, spec.outDir);
        } catch (e) {
          reject(e instanceof Error ? e : new Error(String(e))); // a full disk: the runner handles it
          return;
        } finally {
          closeSync(logFd);
        }
        const s = stop as { reason: string; timedOut: boolean; cancelled: string[] } | null;
        if (s) {
          const how = s.cancelled.length > 0 ? `; step ${s.cancelled.join(', ')} cancelled (scancel)` : '; srun stopped before its step started';
          resolve({ exitCode: code, timedOut: s.timedOut, failureReason: s.timedOut ? `${s.reason}${how}` : s.reason });
        } else if (code === null) {
          resolve({ exitCode: null, timedOut: false, failureReason: `srun was killed by ${sig ?? 'a signal'}` });
        } else {
          resolve({ exitCode: code, timedOut: false, failureReason: null });
        }
      });
      if (spec.timeoutS !== null) timer = setTimeout(() => requestStop(`timed out after ${spec.timeoutS}s`, true), spec.timeoutS * 1000);
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  return {
    name: 'slurm',

    async prepare(_backends, ctx) {
      workspaceRoot = ctx.workspaceRoot;
      if (held) return;
      const name = allocationName(ctx.campaignId);
      const found = (await findAllocations(shell, name)).filter((a) => LIVE.has(a.state));
      const running = found.find((a) => a.state === 'RUNNING') ?? found[0];
      let jobId: string;
      if (running) {
        jobId = running.jobId;
        if (running.state !== 'RUNNING') {
          log(`waiting for allocation ${jobId} (${name}, ${running.state.toLowerCase()})…`);
          if ((await waitRunning(shell, name, jobId)) === null) throw new LemError(`runtime slurm: allocation ${jobId} (${name}) ended before it started; resume to ask for a new one`);
        }
        log(`adopted allocation ${jobId} (${name}) left by an earlier session`);
      } else {
        log(`asking for an allocation (salloc --no-shell --job-name=${name} --gres=${settings.allocation.gres}) on ${shell.where}…`);
        jobId = await allocate(shell, settings, name);
        log(`allocation ${jobId} granted (${name})`);
      }
      held = { jobId, name };
      process.once('exit', releaseOnExit);
    },

    async dispatch(spec: RunSpec, signal: AbortSignal, onStarted: (handle: string) => void): Promise<DispatchOutcome> {
      if (!held) return { exitCode: null, timedOut: false, failureReason: 'runtime slurm: no allocation (prepare was not called)' };
      const { jobId, name } = held;
      const outcome = await runStep(spec, signal, onStarted, jobId);
      if (outcome.exitCode !== 0 && outcome.failureReason === null && !(await findAllocations(shell, name)).some((a) => a.jobId === jobId && LIVE.has(a.state))) {
        // Every later run would fail the same way: stop the campaign; a resume asks for a new allocation.
        held = null;
        process.off('exit', releaseOnExit);
        throw new LemError(`runtime slurm: allocation ${jobId} (${name}) is gone (its time limit, or scancel outside lem) and this run failed with it; resume the campaign to ask for a new allocation.`, EXIT_FAILED_RUNS);
      }
      return outcome;
    },

    /**
     * A worker tool (the thermal probe between runs, `lem calibrate`) as a short step of the
     * allocation, on as many GPUs as a run asks for (`--gpus` ids: enough for the highest).
     */
    async workerTool(_backend, args: readonly string[], timeoutS: number): Promise<WorkerToolResult> {
      if (!held) return { exitCode: null, stdout: '', stderr: 'runtime slurm: no allocation (prepare was not called)' };
      const i = args.indexOf('--gpus');
      const ids = i >= 0 ? (args[i + 1] ?? '').split(',').map(Number).filter((n) => Number.isInteger(n) && n >= 0) : undefined;
      const r = await shell.run('srun', toolSrunArgs(settings, held.jobId, `lem-tool-${held.name}`, stepGpus(settings, ids), args), Math.round(timeoutS * 1000));
      return { exitCode: r.code, stdout: r.stdout, stderr: r.spawnError ? `srun could not start on ${shell.where}: ${r.spawnError}` : r.stderr };
    },

    async reap(handle: string) {
      const m = /^slurm:[^:]+:(.+)$/.exec(handle);
      if (!m) return;
      const steps = await stepsOf(m[1] as string, 1);
      const left = await cancelSteps(steps.map((s) => s.id));
      if (left.length > 0) throw new LemError(`could not stop Slurm step(s) ${left.join(', ')}; scancel them by hand before resuming.`);
    },

    findWorkers,

    async stopWorkers(campaignId: string) {
      const found = await findWorkers(campaignId);
      const left = await cancelSteps(found.map((w) => /^Slurm step (\S+)/.exec(w.where)?.[1] ?? '').filter((id) => id !== ''));
      if (left.length > 0) throw new LemError(`could not stop leftover Slurm step(s) ${left.join(', ')}; scancel them by hand before resuming.`);
      return found;
    },

    async shutdown({ keepServices, campaignId }) {
      const name = held?.name ?? (campaignId ? allocationName(campaignId) : null);
      if (name === null) return;
      if (keepServices) {
        if (held) log(`kept allocation ${held.jobId} (${name}): keep_services; release it with scancel ${held.jobId}`);
        held = null;
        process.off('exit', releaseOnExit);
        return;
      }
      const jobs = new Set(held ? [held.jobId] : []);
      for (const a of await findAllocations(shell, name)) if (LIVE.has(a.state)) jobs.add(a.jobId);
      for (const id of jobs) {
        await cancel(shell, id);
        if (!(await waitJobGone(shell, name, id, 15_000))) log(`allocation ${id} (${name}) is still listed after scancel`);
        else log(`released allocation ${id} (${name})`);
      }
      held = null;
      process.off('exit', releaseOnExit);
    },
  };
}

/** Writes a file so that it is either absent or complete (a resume trusts a present result.json). */
function writeAtomic(path: string, data: Buffer): void {
  const tmp = `${path}.partial`;
  writeFileSync(tmp, data);
  chmodSync(tmp, 0o644);
  renameSync(tmp, path);
}

/** The step's framed files into the run directory; anything else it printed into the log. */
function keepFrames(stdout: Buffer, spec: RunSpec, logFd: number, truncated: boolean): void {
  const parsed = parseFrames(stdout);
  for (const [name, body] of parsed.files) writeAtomic(join(spec.outDir, name), body);
  if (parsed.stray.length > 0) appendFileSync(logFd, parsed.stray);
  for (const p of parsed.problems) appendFileSync(logFd, `lem: step output: ${p}\n`);
  if (truncated) appendFileSync(logFd, `lem: step output over ${MAX_STDOUT} bytes; the rest was dropped\n`);
}

/** results: {shared: DIR}: the worker's files from DIR into the run directory. */
function copyShared(shared: string, outDir: string): void {
  for (const name of ['result.json', 'failure.json']) {
    let body: Buffer;
    try {
      body = readFileSync(join(shared, name));
    } catch {
      continue;
    }
    writeAtomic(join(outDir, name), body);
  }
}
