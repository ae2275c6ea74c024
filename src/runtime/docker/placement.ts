/**
 * Builds the pool runtime (pool.ts) from a campaign's `hosts:`, or the one local host from a fake
 * GPU list ($LEM_FAKE_GPUS = `UUID=MODEL,…`). With hosts and LEM_FAKE_GPUS set (any value), the
 * hosts' `gpus:` lists are taken as fake: no device requests (tests on machines without GPUs).
 */
import type { HostConfig } from '../../config/hosts.js';
import { LemError } from '../../util/errors.js';
import { connectEngine } from './engine.js';
import { parseGpuList } from './hosts.js';
import { autoGpus, configuredGpus, connectHost } from './hosts-engine.js';
import { createGpuPoolRuntime, localPoolHost, type PoolHost } from './pool.js';

export interface PlacementOptions {
  fakeGpus?: boolean;
  log?: (message: string) => void;
  /** Image that runs nvidia-smi for `gpus: auto`; default $LEM_GPU_PROBE_IMAGE or lem-cpu. */
  probeImage?: string;
  env?: NodeJS.ProcessEnv;
}

export function createLocalGpuPool(fakeList: string, opts: Pick<PlacementOptions, 'log'> = {}): ReturnType<typeof createGpuPoolRuntime> {
  return createGpuPoolRuntime({ hosts: [localPoolHost(connectEngine(), parseGpuList(fakeList), true)], ...(opts.log ? { log: opts.log } : {}) });
}

export function createPoolFromHosts(hosts: readonly HostConfig[], opts: PlacementOptions = {}): ReturnType<typeof createGpuPoolRuntime> {
  const env = opts.env ?? process.env;
  const fake = opts.fakeGpus ?? false;
  const connectAll = async (): Promise<PoolHost[]> => {
    const out: PoolHost[] = [];
    const unreachable: string[] = [];
    for (const h of hosts) {
      const given = configuredGpus(h);
      if (given === 'auto' && fake) throw new LemError(`host ${h.name}: LEM_FAKE_GPUS needs its gpus listed, not auto`);
      let he: Awaited<ReturnType<typeof connectHost>> | null = null;
      try {
        he = await connectHost(h, env);
        const gpuList = given === 'auto' ? await autoGpus(h, he.engine, opts.probeImage ?? env['LEM_GPU_PROBE_IMAGE'] ?? 'lem-cpu') : given;
        out.push({ name: h.name, engine: he.engine, gpuList, gpuSets: h.gpu_sets ?? null, fakeGpus: fake, remote: he.remote, close: he.close });
      } catch (err) {
        // A host that cannot be reached now is left out of this session; the others run the campaign.
        he?.close();
        unreachable.push(`${h.name}: ${err instanceof Error ? err.message : String(err)}`);
        opts.log?.(`host ${h.name} is left out of this session: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    if (out.length === 0) throw new LemError(`no host of the pool can be reached: ${unreachable.join('; ')}`);
    return out;
  };
  return createGpuPoolRuntime({ hosts: connectAll, ...(opts.log ? { log: opts.log } : {}) });
}
