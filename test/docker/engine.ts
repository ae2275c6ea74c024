/**
 * Shared by the docker tests: the real engine (as the docker CLI would find it), whether it
 * answers, and cleanup. Tests against it skip on a machine without an engine, but FAIL when
 * process.env.CI is set (CI runs .ci/docker-setup.sh first, so a missing engine is a CI bug).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { connectEngine, type Engine } from '../../src/runtime/docker/engine.js';

export const engine: Engine = connectEngine();
export const docker: Docker = engine.docker;
export const engineUp: boolean = await docker.ping().then(
  () => true,
  () => false,
);
/** Run the suite when the engine answers, or when CI demands it (then it fails loudly). */
export const runDockerTests = engineUp || Boolean(process.env['CI']);

export const TEST_IMAGE = process.env['LEM_TEST_IMAGE'] ?? 'lem-cpu';

/** Call from beforeAll: fails (never skips) when the engine or the test image is missing. */
export async function requireEngine(): Promise<void> {
  if (!engineUp) {
    throw new Error(`CI is set but no Docker engine answers at ${engine.endpoint.description}; run .ci/docker-setup.sh before the tests`);
  }
  try {
    await docker.getImage(TEST_IMAGE).inspect();
  } catch {
    throw new Error(`image ${TEST_IMAGE} is missing on the engine; run .ci/docker-setup.sh (it builds it offline)`);
  }
}

export function tempWorkspace(prefix = 'lem-docker-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function uniqueId(prefix: string): string {
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
}

export async function containersWithLabel(label: string, all = true): Promise<Docker.ContainerInfo[]> {
  return docker.listContainers({ all, filters: { label: [label] } });
}

/** Removes every container labelled for a test campaign (afterAll safety net). */
export async function removeCampaignContainers(campaignId: string): Promise<void> {
  for (const c of await containersWithLabel(`lem.campaign=${campaignId}`)) {
    await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
