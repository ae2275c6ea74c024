/**
 * Readiness: waiting until a service container's worker answers its health check, and what to
 * say when it does not (the container's last output, redacted).
 */
import type Docker from 'dockerode';
import type { LemError } from '../../util/errors.js';
import { describeError } from './engine.js';
import { execCapture } from './exec.js';
import type { ServiceState } from './service-spec.js';

/** What the waits need from the service layer. */
export interface ReadinessHost {
  docker(): Docker;
  redact(message: string): string;
  fail(message: string): LemError;
  execUser(): string | undefined;
  workerEnv(withToken: boolean): string[];
}

export interface HealthCheck {
  /** The readiness probe, run by exec. */
  command: string[];
  timeoutMs: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The last few lines the container printed, one line, redacted ('' when unavailable). */
export async function containerLogsTail(host: ReadinessHost, id: string): Promise<string> {
  try {
    const buf = await host.docker().getContainer(id).logs({ stdout: true, stderr: true, tail: 20, follow: false });
    // Non-tty logs are multiplexed: drop the 8-byte frame headers.
    const out: string[] = [];
    for (let i = 0; i + 8 <= buf.length; ) {
      const len = buf.readUInt32BE(i + 4);
      out.push(buf.subarray(i + 8, i + 8 + len).toString('utf8'));
      i += 8 + len;
    }
    return host.redact(out.join('').trim().split('\n').slice(-5).join(' | '));
  } catch {
    return '';
  }
}

/** Waits until the worker inside answers its health check. */
export async function waitHealthy(host: ReadinessHost, state: ServiceState, check: HealthCheck): Promise<void> {
  const { command: cmd, timeoutMs } = check;
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (let delay = 100; ; delay = Math.min(delay * 2, 1000)) {
    const info = await host.docker().getContainer(state.containerId).inspect();
    if (!info.State.Running) {
      const tail = await containerLogsTail(host, state.containerId);
      throw host.fail(
        `service ${state.name} (${state.containerName}) stopped while starting: exit code ${info.State.ExitCode}${info.State.Error ? `, ${info.State.Error}` : ''}${tail ? `; last output: ${tail}` : ''}`,
      );
    }
    try {
      const user = host.execUser();
      const r = await execCapture(host.docker(), state.containerId, cmd, {
        env: host.workerEnv(false),
        timeoutMs: Math.max(1000, deadline - Date.now()),
        ...(user ? { user } : {}),
      });
      if (r.exitCode === 0) return;
      last = `exit ${r.exitCode ?? 'unknown'}: ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ')}`;
    } catch (err) {
      last = describeError(err);
    }
    if (Date.now() >= deadline) {
      throw host.fail(
        `service ${state.name} (${state.containerName}) did not become healthy within ${Math.round(timeoutMs / 1000)} s: \`${cmd.join(' ')}\` failed (${last}). ` +
          `Is the worker in image ${state.def.image} current? Rebuild with \`lem images build ${[...state.backends].join(' ')}\`.`,
      );
    }
    await sleep(delay);
  }
}
