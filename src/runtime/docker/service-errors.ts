/** What the service layer says when a container cannot be started or keeps disappearing. */
import { EXIT_FAILED_RUNS, LemError } from '../../util/errors.js';
import { describeError, statusCode } from './engine.js';
import type { ServiceState } from './service-spec.js';

/** The service containers keep disappearing: the campaign stops (exit 1) rather than burn its runs. */
export class ServicesLostError extends LemError {
  constructor(message: string) {
    super(message, EXIT_FAILED_RUNS);
    this.name = 'ServicesLostError';
  }
}

/** The engine's answers for a container that is being removed or is already gone. */
export function isGoneError(err: unknown): boolean {
  return statusCode(err) === 404 || /marked for removal|removal in progress|no such container|is dead/i.test(describeError(err));
}

/** Messages from a failed start, rephrased where the cause is known. */
export function startError(host: { fail(message: string): LemError }, state: Pick<ServiceState, 'name' | 'def'>, err: unknown): LemError {
  const msg = describeError(err);
  if (/could not select device driver|nvidia/i.test(msg)) {
    return host.fail(
      `service ${state.name} reserves GPUs but the Docker engine cannot provide them (${msg}). Install the NVIDIA Container Toolkit on the engine's host ` +
        '(`nvidia-ctk runtime configure --runtime=docker`, then restart dockerd) or run without GPUs via LEM_COMPOSE_FILE=docker-compose.yml:compose/cpu-only.yml; `lem doctor` checks this.',
    );
  }
  return host.fail(`cannot start service ${state.name} (${state.def.image}): ${msg}`);
}
