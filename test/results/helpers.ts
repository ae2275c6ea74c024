/** Shared test helpers for the results layer (not a test file). */
import { expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import type { ExperimentRecord, RunRecord } from '../../src/results/aggregate.js';

export const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'results');

export function fixture(name: string): string {
  return readFileSync(join(FIXTURES, name), 'utf8');
}

export function fixtureJson(name: string): unknown {
  return JSON.parse(fixture(name)) as unknown;
}

/** Deep equality where numbers may differ by a relative 1e-12 (floating-point unit conversions). */
export function expectClose(actual: unknown, expected: unknown, path = '$'): void {
  if (typeof expected === 'number' && typeof actual === 'number') {
    const tol = 1e-12 * Math.max(1, Math.abs(expected));
    if (Math.abs(actual - expected) > tol) expect.fail(`${path}: ${actual} ≠ ${expected}`);
    return;
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual)) expect.fail(`${path}: expected an array, got ${JSON.stringify(actual)}`);
    expect(actual.length, `${path}.length`).toBe(expected.length);
    expected.forEach((e, i) => expectClose((actual as unknown[])[i], e, `${path}[${i}]`));
    return;
  }
  if (expected !== null && typeof expected === 'object') {
    if (actual === null || typeof actual !== 'object') expect.fail(`${path}: expected an object, got ${JSON.stringify(actual)}`);
    expect(Object.keys(actual as object).sort(), `${path} keys`).toEqual(Object.keys(expected).sort());
    for (const [k, v] of Object.entries(expected)) expectClose((actual as Record<string, unknown>)[k], v, `${path}.${k}`);
    return;
  }
  expect(actual, path).toEqual(expected);
}

export function run(
  runId: string,
  experimentId: string,
  cycle: number,
  metrics: Record<string, number | null>,
  extra: Partial<RunRecord> = {},
): RunRecord {
  return { runId, experimentId, cycle, status: 'succeeded', metrics, flags: [], resultPath: null, ...extra };
}

export function experiment(id: string, name = id, backend = 'vllm', config: unknown = {}): ExperimentRecord {
  return { id, name, backend, config };
}

/** mulberry32: a PRNG independent of lem's own sfc32, so the tests do not sample with the code they check. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
