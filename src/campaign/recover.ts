/** Recovery on resume (runner.ts calls it first): the runs an orchestrator that died left in flight. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { runId } from '../manifest/manifest.js';
import { ingestResultFile } from '../contract/ingest.js';
import { checkWindow, recordOrphanWindows } from './windows.js';
import { noteDeviceWait } from './attempt.js';
import { runDir, type RunnerDeps } from './run-types.js';

/**
 * Runs marked 'running' belong to an orchestrator that died (kill -9, power loss). First every live
 * worker of the campaign is stopped — found by the attempt token on its command line, so also one
 * started after its run was marked running but before its handle was recorded — and waited for
 * until it is gone, so nothing is dispatched beside it. Then a result it completed is kept (nothing
 * measured is lost); otherwise the run is interrupted and will be run again. Windows of completed
 * orphans' results are recorded, so a recorded run they overlapped is flagged.
 */
export async function recoverInFlight(campaignId: string, deps: RunnerDeps): Promise<number> {
  const { manifest, runtime, progress } = deps;
  let recovered = 0;
  if (manifest.runs(campaignId).some((r) => r.attempt > 0)) {
    const stopped = await runtime.stopWorkers(campaignId);
    if (stopped.length > 0) {
      manifest.note(campaignId, null, 'workers_stopped', { workers: stopped.map((w) => ({ token: w.token, where: w.where })) });
      progress.note(`stopped ${stopped.length} worker(s) left running by an earlier session: ${stopped.map((w) => `${w.token} (${w.where})`).join(', ')}`);
    }
    const fetched = (await runtime.recoverResults?.(campaignId, deps.workspaceRoot)) ?? 0;
    if (fetched > 0) progress.note(`fetched ${fetched} result file(s) left on remote hosts by an earlier session`);
    const orphans = recordOrphanWindows(manifest, campaignId, (run, attempt) => runDir(deps.workspaceRoot, campaignId, run, attempt));
    if (orphans > 0) progress.note(`recorded the measured windows of ${orphans} unrecorded result(s) left by earlier sessions`);
  }
  for (const run of manifest.runs(campaignId, ['running'])) {
    if (run.handle) await runtime.reap(run.handle);
    const dir = runDir(deps.workspaceRoot, campaignId, run, run.attempt);
    const resultPath = join(dir, 'result.json');
    if (existsSync(resultPath)) {
      const ingested = ingestResultFile(resultPath, { runId: runId(campaignId, run.position), experimentId: run.experimentId, cycle: run.cycle, attempt: run.attempt });
      const flags = ingested.ok ? checkWindow(manifest, campaignId, run.position, run.attempt, ingested.result, ingested.flags) : [];
      if (ingested.ok) noteDeviceWait(manifest, campaignId, run.position, run.attempt, ingested.result.device_lock);
      if (ingested.ok && manifest.markSucceeded(campaignId, run.position, run.attempt, { resultPath, metrics: ingested.result.metrics, flags, exitCode: null, recovered: true, sha256: ingested.sha256, bytes: ingested.bytes })) {
        recovered++;
        continue;
      }
    }
    manifest.markEnded(campaignId, run.position, run.attempt, {
      status: 'interrupted',
      exitCode: null,
      error: 'the orchestrator stopped while this run was in flight; it is run again',
      failureKind: 'interrupted',
    });
  }
  return recovered;
}
