/**
 * Throwaway containers (the worker's preflight probe, the `gpus: auto` nvidia-smi probe, the
 * result-fetch container of remote hosts) carry the `host:pid` of the lem that created them. A lem
 * killed while one exists leaves it behind (created but never started, or exited without
 * AutoRemove); the next lem on that host removes those whose owner is no longer alive before it
 * creates its own. A live lem's, or another host's, is left alone.
 */
import { hostname } from 'node:os';
import type Docker from 'dockerode';
import { pidAlive } from '../../util/process.js';

/** `host:pid` of the lem that created a throwaway container. */
export const OWNER_LABEL = 'lem.owner';

/** The owner label of a throwaway container this process creates. */
export function ownerLabels(host = hostname(), pid = process.pid): Record<string, string> {
  return { [OWNER_LABEL]: `${host}:${pid}` };
}

/** Removes the engine's throwaway containers whose owner (on this host) is dead. Returns how many it removed. */
export async function sweepDeadThrowaways(docker: Docker, host = hostname(), alive: (pid: number) => boolean = pidAlive): Promise<number> {
  const list = await docker.listContainers({ all: true, filters: { label: [OWNER_LABEL] } });
  let removed = 0;
  for (const c of list) {
    const owner = /^(.*):(\d+)$/.exec(c.Labels[OWNER_LABEL] ?? '');
    if (!owner || owner[1] !== host || alive(Number(owner[2]))) continue;
    await docker.getContainer(c.Id).remove({ force: true }).then(
      () => removed++,
      () => undefined, // gone meanwhile (AutoRemove), or removed by another lem's sweep
    );
  }
  return removed;
}
