/**
 * What identifies a worker inside a service container (its handle in the manifest), and whether a
 * service container died under a run.
 */
import type Docker from 'dockerode';
import { statusCode } from './engine.js';
import type { ServiceState } from './services.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface Handle {
  containerId: string;
  pid: number;
  startTime: string;
}

/** `docker:<container id>:<pid>:<start time>`: enough for reap() to find and stop an orphan. */
export function encodeHandle(h: Handle): string {
  return `docker:${h.containerId}:${h.pid}:${h.startTime}`;
}

export function decodeHandle(handle: string): Handle | null {
  const m = /^docker:([0-9a-f]{12,64}):(\d+):(\d+)$/.exec(handle);
  if (!m) return null;
  return { containerId: m[1] ?? '', pid: Number(m[2]), startTime: m[3] ?? '' };
}

/**
 * Did the container itself die (docker kill, OOM, engine restart) under the run? When the worker
 * ended by a signal (bySignal) the engine may not have recorded the container's death yet, so look
 * a few times before believing it is still up. The reason, or null while it is up.
 */
export async function containerDeath(d: Docker, containerId: string, state: ServiceState, bySignal: boolean): Promise<string | null> {
  try {
    let info = await d.getContainer(containerId).inspect();
    for (let i = 0; bySignal && i < 40 && info.State.Running && info.State.StartedAt === state.startedAt; i++) {
      await sleep(50);
      info = await d.getContainer(containerId).inspect();
    }
    if (!info.State.Running || info.State.StartedAt !== state.startedAt) {
      const parts = [`exit code ${info.State.ExitCode}`];
      if (info.State.OOMKilled) parts.push('killed by the out-of-memory killer (OOMKilled)');
      if (info.State.Error) parts.push(info.State.Error);
      if (info.State.Running) parts.push('it was restarted meanwhile');
      return `the ${state.name} service container (${state.containerName}) stopped during the run: ${parts.join(', ')}`;
    }
    return null;
  } catch (err) {
    return statusCode(err) === 404 ? `the ${state.name} service container (${state.containerName}) was removed during the run` : null;
  }
}
