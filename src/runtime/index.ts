/** Picks the runtime a campaign asked for. */
import type { RuntimeName } from '../config/campaign.js';
import { createLocalRuntime } from './local.js';
import type { Runtime } from './types.js';

export type { Runtime, RunSpec, DispatchOutcome, RuntimeContext } from './types.js';

export async function createRuntime(name: RuntimeName): Promise<Runtime> {
  switch (name) {
    case 'local':
      return createLocalRuntime();
    case 'docker': {
      // TEMPORARY: the docker runtime module lands separately; resolved at run time until then.
      const file = 'runtime';
      const mod = (await import(`./docker/${file}.js`)) as { createDockerRuntime(opts: object): Runtime };
      return mod.createDockerRuntime({});
    }
  }
}
