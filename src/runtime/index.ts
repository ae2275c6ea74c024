/** Picks the runtime a campaign asked for. */
import type { RuntimeName } from '../config/campaign.js';
import { createLocalRuntime } from './local.js';
import type { Runtime } from './types.js';

export type { Runtime, RunSpec, DispatchOutcome, RuntimeContext } from './types.js';

export interface RuntimeOptions {
  /** Where a runtime reports what it starts, adopts and removes. */
  log?: (message: string) => void;
}

export async function createRuntime(name: RuntimeName, opts: RuntimeOptions = {}): Promise<Runtime> {
  switch (name) {
    case 'local':
      return createLocalRuntime();
    case 'docker': {
      // Loaded only when asked for: dockerode is not needed on the embedded default.
      const fake = process.env['LEM_FAKE_GPUS'];
      if (fake !== undefined && fake.trim() !== '') {
        // A fake GPU list (tests on machines without GPUs): parallel GPU sets on the one engine.
        const [{ createGpuPoolRuntime }, { parseGpuList }] = await Promise.all([import('./docker/pool.js'), import('./docker/hosts.js')]);
        return createGpuPoolRuntime({ gpuList: parseGpuList(fake), fakeGpus: true, ...(opts.log ? { log: opts.log } : {}) });
      }
      const { createDockerRuntime } = await import('./docker/runtime.js');
      return createDockerRuntime(opts.log ? { log: opts.log } : {});
    }
  }
}
