/** Picks the runtime a campaign asked for. */
import type { RuntimeName } from '../config/campaign.js';
import type { HostConfig } from '../config/hosts.js';
import { SlurmSettings } from '../config/slurm.js';
import { createLocalRuntime } from './local.js';
import type { Runtime } from './types.js';

export type { Runtime, RunSpec, DispatchOutcome, RuntimeContext } from './types.js';

export interface RuntimeOptions {
  /** Where a runtime reports what it starts, adopts and removes. */
  log?: (message: string) => void;
  /** The campaign's `hosts:` (docker runtime): a pool of engines. */
  hosts?: HostConfig[];
  /** The campaign's `slurm:` block (runtime slurm; absent: every default). */
  slurm?: SlurmSettings;
}

export async function createRuntime(name: RuntimeName, opts: RuntimeOptions = {}): Promise<Runtime> {
  switch (name) {
    case 'local':
      return createLocalRuntime();
    case 'docker': {
      // Loaded only when asked for: dockerode is not needed on the embedded default.
      const fake = process.env['LEM_FAKE_GPUS']?.trim() ?? '';
      if (opts.hosts && opts.hosts.length > 0) {
        const { createPoolFromHosts } = await import('./docker/placement.js');
        return createPoolFromHosts(opts.hosts, { fakeGpus: fake !== '', ...(opts.log ? { log: opts.log } : {}) });
      }
      if (fake !== '') {
        // A fake GPU list (tests on machines without GPUs): parallel GPU sets on the one engine.
        const { createLocalGpuPool } = await import('./docker/placement.js');
        return createLocalGpuPool(fake, opts.log ? { log: opts.log } : {});
      }
      const { createDockerRuntime } = await import('./docker/runtime.js');
      return createDockerRuntime(opts.log ? { log: opts.log } : {});
    }
    case 'slurm': {
      const { createSlurmRuntime } = await import('./slurm/runtime.js');
      return createSlurmRuntime(opts.slurm ?? SlurmSettings.parse({}), opts.log ? { log: opts.log } : {});
    }
  }
}
