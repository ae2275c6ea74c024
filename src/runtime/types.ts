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

export interface Runtime {
  readonly name: 'local' | 'docker';
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
  workerTool?(backend: BackendName, args: readonly string[], timeoutS: number): Promise<WorkerToolResult>;
  /**
   * Tear down what prepare started (unless asked to keep it). With campaignId, also whatever an
   * earlier session of that campaign left behind (a container runtime removes them by label).
   */
  shutdown(opts: { keepServices: boolean; campaignId?: string }): Promise<void>;
}
