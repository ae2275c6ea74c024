/**
 * `lem doctor --campaign FILE`: every host of a campaign's `hosts:` checked through its own engine —
 * reachable (and its version), the compose services' images present there, and its GPUs (the
 * listed ones, or `auto` through nvidia-smi in a container; a fake list with LEM_FAKE_GPUS).
 */
import type { HostConfig } from '../../config/hosts.js';
import type { ComposeProject } from './compose.js';
import { describeError } from './engine.js';
import { gpuSetsOf } from './hosts.js';
import { autoGpus, configuredGpus, connectHost } from './hosts-engine.js';

export interface HostCheck {
  id: string;
  status: 'ok' | 'warn' | 'fail';
  summary: string;
  fix: string | null;
}

export async function checkHosts(hosts: readonly HostConfig[], project: ComposeProject | null, env: NodeJS.ProcessEnv = process.env): Promise<HostCheck[]> {
  const out: HostCheck[] = [];
  const fake = (env['LEM_FAKE_GPUS'] ?? '').trim() !== '';
  for (const h of hosts) {
    const id = `host:${h.name}`;
    let conn: Awaited<ReturnType<typeof connectHost>>;
    try {
      conn = await connectHost(h, env);
    } catch (err) {
      out.push({ id, status: 'fail', summary: err instanceof Error ? err.message : String(err), fix: `check hosts.${h.name}.engine and that you can reach it` });
      continue;
    }
    try {
      const v = await conn.engine.docker.version();
      out.push({ id, status: 'ok', summary: `Docker engine ${v.Version} at ${conn.engine.endpoint.description}${conn.remote ? ' (remote: run files over the archive API)' : ''}`, fix: null });
      if (project) {
        for (const [name, svc] of Object.entries(project.services)) {
          const present = await conn.engine.docker.getImage(svc.image).inspect().then(
            () => true,
            () => false,
          );
          out.push({
            id: `${id}:image:${name}`,
            status: present ? 'ok' : 'warn',
            summary: `${svc.image} ${present ? 'present' : 'missing'} on ${h.name}`,
            fix: present ? null : `docker save ${svc.image} | docker -H <${h.name}'s engine> load (or build it there)`,
          });
        }
      }
      const given = configuredGpus(h);
      const gpus = given === 'auto' ? (fake ? null : await autoGpus(h, conn.engine, env['LEM_GPU_PROBE_IMAGE'] ?? 'lem-cpu')) : given;
      if (gpus === null) out.push({ id: `${id}:gpus`, status: 'fail', summary: `LEM_FAKE_GPUS is set but ${h.name} has gpus: auto`, fix: `list hosts.${h.name}.gpus` });
      else {
        const sets = h.gpu_sets ?? null;
        for (const n of new Set((sets ?? []).map((x) => x.length))) gpuSetsOf(h.name, gpus, n, sets); // names a GPU it has?
        out.push({
          id: `${id}:gpus`,
          status: 'ok',
          summary: `${gpus.length} GPU(s)${fake ? ' (fake list)' : ''}: ${gpus.map((g) => `${g.uuid}${g.model ? ` ${g.model}` : ''}`).join(', ')}${sets !== null ? `; fixed GPU sets ${JSON.stringify(sets)}` : ''}`,
          fix: null,
        });
      }
    } catch (err) {
      out.push({ id, status: 'fail', summary: `host ${h.name} at ${conn.engine.endpoint.description}: ${describeError(err)}`, fix: `check that the engine of ${h.name} is up` });
    } finally {
      conn.close();
    }
  }
  return out;
}
