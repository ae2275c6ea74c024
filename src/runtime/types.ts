/**
 * The seam between the campaign runner and where a worker actually runs.
 * `local` runs the worker as a subprocess; `docker` execs it inside a long-running backend
 * container. The runner only ever talks to this interface.
 */
import type { BackendName } from '../contract/backends.js';

export interface RuntimeContext {
  campaignId: string;
  /** Root under which every run directory lives; a container runtime mounts this. */
  workspaceRoot: string;
  /** Restart the backend's service between runs. */
  forceColdStart: boolean;
  /**
   * What the campaign's experiments fetch from the Hugging Face hub (absent: nothing). A container
   * runtime mounts the model cache read-only when all of it is already cached.
   */
  hub?: HubNeeds;
}

export interface HubNeeds {
  /** Models loaded by hub id (not no_weights, not a local path), with the revision asked for. */
  models: { id: string; revision: string | null }[];
  /** Datasets used as prompts (the datasets library writes its own cache under HF_HOME). */
  datasets: string[];
}

export interface RunSpec {
  runId: string;
  experimentId: string;
  cycle: number;
  attempt: number;
  backend: BackendName;
  /** Absolute path, under workspaceRoot, of the worker's input (config.json). */
  configPath: string;
  /** Absolute directory, under workspaceRoot, where the worker writes result.json. */
  outDir: string;
  /** Absolute path of the run's log file; the runtime streams worker stdout/stderr here live. */
  logPath: string;
  /** Kill the worker after this many seconds; null = no limit. */
  timeoutS: number | null;
  /**
   * This attempt's token (attemptToken()), recorded in the manifest before dispatch; the worker
   * carries it on its command line (`--attempt-token`) and in LEM_ATTEMPT_TOKEN, which is how
   * findWorkers/stopWorkers find it even when no handle was ever recorded.
   */
  attemptToken: string;
  /** The GPU set the run was placed on (parallel GPU sets, a pool of hosts); absent: the runtime's one place. */
  slot?: GpuSlot;
}

/**
 * One place a run can run: a set of GPUs on one host (one service per backend and set, one run at a
 * time). GPUs are named by UUID where known (a fake or index-only list keeps what it was given).
 */
export interface GpuSlot {
  /** Unique in the runtime: `<host>/<gpu set>`, e.g. `local/0-1`. */
  key: string;
  host: string;
  gpus: string[];
  /** The GPUs' model (results of different models are kept apart), or null when unknown. */
  model: string | null;
}

/** A live worker of a campaign, found by its attempt token. */
export interface LiveWorker {
  token: string;
  pid: number;
  /** Where it runs, for messages: `pid 123`, `pid 45 in lem-cpu-1`. */
  where: string;
}

/** The token of one attempt: `lem-<campaign id>-p<position>-a<attempt>` (unique in a manifest). */
export function attemptToken(campaignId: string, position: number, attempt: number): string {
  return `${attemptTokenPrefix(campaignId)}${position}-a${attempt}`;
}

/** What every attempt token of a campaign starts with. */
export function attemptTokenPrefix(campaignId: string): string {
  return `lem-${campaignId}-p`;
}

/** Is `token` an attempt token of exactly this campaign (not of one whose id merely extends it)? */
export function isCampaignToken(token: string, campaignId: string): boolean {
  const prefix = attemptTokenPrefix(campaignId);
  return token.startsWith(prefix) && /^\d+-a\d+$/.test(token.slice(prefix.length));
}

export interface DispatchOutcome {
  exitCode: number | null;
  timedOut: boolean;
  /** Why the run failed when it is not a plain non-zero exit (killed container, OOM, timeout, abort). */
  failureReason: string | null;
  /** What the runtime saw end the run, when it knows better than the worker's exit code (optional). */
  failureKind?: 'container_gone' | 'killed';
  /** The run's host stopped answering (a pool of engines): the run is interrupted and placed again elsewhere. */
  hostLost?: boolean;
}

/** GPU temperature and power as the worker reads them (`python3 -m lem_worker thermal --json`). */
export interface ThermalReading {
  gpus: Array<{ index: number; temp_c: number | null; power_w: number | null }>;
  /** Why there is no reading (no NVML, no GPU), or null. */
  reason: string | null;
}

/** A `python3 -m lem_worker …` tool command's output (thermal, calibrate). */
export interface WorkerToolResult {
  exitCode: number | null;
  stdout: string;
  stderr: string;
}

/**
 * What `python3 -m lem_worker probe --json` said where a backend's runs will run (the local
 * interpreter, or a throwaway container of the backend's image), or why it could not be asked.
 */
export type ProbeOutcome =
  /**
   * `where`: the image or interpreter asked; `report`: the worker's JSON (lem.probe/1), unparsed, or
   * null when the worker there predates the probe (then `note` says so).
   */
  | { ok: true; where: string; report: unknown; note?: string }
  | { ok: false; where: string; problem: string; fix: string | null };

export interface Runtime {
  readonly name: 'local' | 'docker' | 'slurm';
  /** Start (or adopt) whatever the listed backends need. Called once per campaign session. */
  prepare(backends: readonly BackendName[], ctx: RuntimeContext): Promise<void>;
  /**
   * Run one experiment to completion. `onStarted` receives a handle (pid, container/exec id)
   * the runner records in the manifest so a later resume can find and stop an orphan.
   * Aborting `signal` must stop the worker and resolve (not reject) with failureReason set.
   */
  dispatch(spec: RunSpec, signal: AbortSignal, onStarted: (handle: string) => void): Promise<DispatchOutcome>;
  /** Stop a worker left behind by a killed orchestrator, given the handle it recorded. */
  reap(handle: string): Promise<void>;
  /** The live workers of a campaign (by attempt token) wherever this runtime runs them. */
  findWorkers(campaignId: string): Promise<LiveWorker[]>;
  /**
   * Stops every live worker of a campaign (SIGTERM, then SIGKILL after a grace period) and resolves
   * once they are gone, with what it stopped; rejects when one cannot be stopped.
   */
  stopWorkers(campaignId: string): Promise<LiveWorker[]>;
  /**
   * Run a short worker tool command (`python3 -m lem_worker ARGS…`) where the backend's runs run
   * (local: a subprocess; docker: an exec in the backend's service). Optional: thermal gaps and
   * `lem calibrate` use it; a runtime without it has no sensor.
   */
  workerTool?(backend: BackendName, args: readonly string[], timeoutS: number, slot?: GpuSlot): Promise<WorkerToolResult>;
  /**
   * The disjoint GPU sets runs needing `gpus` GPUs (null: the experiment names no count) can run on
   * at the same time. Optional: a runtime without it (or one answering fewer than two) runs one run
   * at a time as before.
   */
  slots?(gpus: number | null): GpuSlot[];
  /**
   * On resume, before orphans are looked at: bring back result files that workers wrote where this
   * machine cannot see them (a remote engine's volume) into the run directories here. Optional.
   */
  recoverResults?(campaignId: string, workspaceRoot: string): Promise<number>;
  /**
   * Preflight: does what the backend's runs need exist (its image, the interpreter), and what does
   * the worker there report for these experiment configs (packages needed, GPUs seen)? Starts no
   * service and leaves nothing behind (docker: a throwaway container, removed). Optional.
   */
  probe?(backend: BackendName, configs: readonly unknown[]): Promise<ProbeOutcome>;
  /**
   * Tear down what prepare started (unless asked to keep it). With campaignId, also whatever an
   * earlier session of that campaign left behind (a container runtime removes them by label).
   */
  shutdown(opts: { keepServices: boolean; campaignId?: string }): Promise<void>;
}
