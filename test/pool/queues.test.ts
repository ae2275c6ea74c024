/**
 * GPU-set queues (campaign/queues.ts), GPU sets (runtime/docker/hosts.ts) and their service specs, with fake GPU lists:
 * runs on disjoint sets overlap in time, two runs never hold one GPU, each set keeps the plan's order.
 */
import { describe, expect, it } from 'vitest';
import { runOnSlots } from '../../src/campaign/queues.js';
import { gpuSetsOf, parseGpuList } from '../../src/runtime/docker/hosts.js';
import type { GpuSlot } from '../../src/runtime/types.js';
import { composeFromTexts } from '../../src/runtime/docker/compose.js';
import { containerSpec, remoteVolumesFor } from '../../src/runtime/docker/service-spec.js';

const gpus = parseGpuList('GPU-a=A100,GPU-b=A100,GPU-c=A100,GPU-d=A100');

/** Runs a plan with work that yields to the event loop a few times; records holds and order. */
async function simulate(items: Array<{ id: number; gpus: number | null }>, stopAt: number | null = null) {
  const held = new Map<string, number>();
  const log: Array<{ id: number; slot: string; first: boolean }> = [];
  const violations: string[] = [];
  let concurrent = 0;
  let maxConcurrent = 0;
  await runOnSlots({
    items,
    gpusOf: (i) => i.gpus,
    slotsFor: (n) => gpuSetsOf('h', gpus, n),
    work: async (item, slot: GpuSlot, first) => {
      for (const g of slot.gpus) {
        if (held.has(g)) violations.push(`run ${item.id} on ${g} held by ${held.get(g)}`);
        held.set(g, item.id);
      }
      log.push({ id: item.id, slot: slot.key, first });
      maxConcurrent = Math.max(maxConcurrent, ++concurrent);
      for (let k = 0; k < 3 + (item.id % 4); k++) await new Promise((r) => setImmediate(r));
      concurrent--;
      for (const g of slot.gpus) held.delete(g);
      return item.id === stopAt ? 'stop' : 'continue';
    },
  });
  return { log, violations, maxConcurrent };
}

describe('parallel GPU sets (fake GPU lists)', () => {
  it('cuts a GPU list into disjoint sets of the count a run needs, per GPU model, or uses fixed sets', () => {
    expect(gpuSetsOf('h', gpus, 2).map((s) => s.gpus)).toEqual([['GPU-a', 'GPU-b'], ['GPU-c', 'GPU-d']]);
    expect(gpuSetsOf('h', gpus, 3).map((s) => s.key)).toEqual(['h/0-1-2']);
    expect(gpuSetsOf('h', gpus, null).map((s) => s.key)).toEqual(['h/all']);
    const mixed = parseGpuList('GPU-a=A100,GPU-b=H100,GPU-c=A100');
    expect(gpuSetsOf('h', mixed, 2).map((s) => [s.gpus, s.model])).toEqual([[['GPU-a', 'GPU-c'], 'A100']]);
    expect(gpuSetsOf('h', gpus, 1, [[0, 1], [2], [3]]).map((s) => s.key)).toEqual(['h/2', 'h/3']);
    expect(() => gpuSetsOf('h', gpus, 1, [[7]])).toThrow(/gpu_sets names GPU 7/);
    expect(() => parseGpuList('GPU-a,GPU-a')).toThrow(/listed twice/);
  });

  it('runs disjoint sets side by side, never two runs on one GPU, the plan order within each set', async () => {
    // Sets of 1 and of 2 GPUs overlap on the same GPUs: the scheduler must still keep them apart.
    const items = Array.from({ length: 24 }, (_, id) => ({ id, gpus: id % 3 === 0 ? 2 : 1 }));
    const { log, violations, maxConcurrent } = await simulate(items);
    expect(violations).toEqual([]);
    expect(log.map((l) => l.id).sort((a, b) => a - b)).toEqual(items.map((i) => i.id));
    expect(maxConcurrent).toBeGreaterThan(1);
    for (const slot of new Set(log.map((l) => l.slot))) {
      const ids = log.filter((l) => l.slot === slot).map((l) => l.id);
      expect(ids).toEqual([...ids].sort((a, b) => a - b));
      expect(log.filter((l) => l.slot === slot && l.first)).toHaveLength(1);
    }
  });

  it('stops taking runs after one says stop; the runs in flight end', async () => {
    const items = Array.from({ length: 12 }, (_, id) => ({ id, gpus: 1 }));
    const { log } = await simulate(items, 2);
    expect(log.length).toBeLessThan(12);
    expect(log.some((l) => l.id === 2)).toBe(true);
  });

  it('a run whose host was lost is placed again on a set still there of the same GPU model, at its place in the plan', async () => {
    const h1 = parseGpuList('GPU-1a=A100,GPU-1b=H100');
    const h2 = parseGpuList('GPU-2a=A100');
    const down = new Set<string>();
    const ran: Array<{ id: number; slot: string }> = [];
    const unplaceable: number[] = [];
    let lost = false;
    await runOnSlots({
      items: Array.from({ length: 6 }, (_, id) => ({ id })),
      gpusOf: () => 1,
      slotsFor: (n) => [...(down.has('h1') ? [] : gpuSetsOf('h1', h1, n)), ...(down.has('h2') ? [] : gpuSetsOf('h2', h2, n))],
      work: async (item, slot) => {
        // h1's A100 is slow and h2 is lost soon: when the lost run comes back, only the H100 set is free.
        for (let k = 0; k < (slot.key === 'h1/0' ? 8 : slot.host === 'h2' ? 2 : 1); k++) await new Promise((r) => setImmediate(r));
        if (slot.host === 'h2' && !lost) {
          lost = true;
          down.add('h2');
          return 'requeue';
        }
        ran.push({ id: item.id, slot: slot.key });
        return 'continue';
      },
      onUnplaceable: (item) => unplaceable.push(item.id),
    });
    expect(lost).toBe(true);
    expect(unplaceable).toEqual([]);
    expect(ran.map((r) => r.id).sort()).toEqual([0, 1, 2, 3, 4, 5]);
    expect(ran.every((r) => !r.slot.startsWith('h2/'))).toBe(true);
    // The run lost on h2 (an A100) ran again on h1's A100 (GPU 0), not on the H100.
    const again = ran.find((r) => r.id === 2);
    expect(again?.slot).toBe('h1/0');
    // It went back to its place among the runs not yet started: later runs on that set come after it.
    const onA100 = ran.filter((r) => r.slot === 'h1/0').map((r) => r.id);
    expect(onA100.slice(onA100.indexOf(2) + 1).every((id) => id > 2)).toBe(true);
  });

  it('refuses a run no GPU set fits', async () => {
    await expect(simulate([{ id: 0, gpus: 8 }])).rejects.toThrow(/no GPU set fits a run needing 8/);
  });
});

describe('the service spec of a GPU set (pure)', () => {
  const p = composeFromTexts([{ file: '/p/docker-compose.yml', text: 'services:\n  cpu:\n    image: lem-cpu\n    volumes:\n      - /host/models:/models:ro\n      - cache:/cache\n' }], { projectDir: '/p', env: {} });
  const def = p.services['cpu'];
  if (!def) throw new Error('no cpu service');
  const input = { project: p, ctx: { campaignId: 'c1', workspaceRoot: '/ws', forceColdStart: false }, imageId: 'sha256:x', number: 1, hfHome: '/hf', gpus: 'compose' as const, init: true, workerMount: null, user: null, hfWritable: false, needsHome: false, extraBinds: ['/tmp/locks:/tmp/locks'] };

  it('names exactly the set\'s GPUs in its device request and label; indices are host-qualified for the worker', () => {
    const spec = containerSpec({ name: 'cpu', def, backends: new Set(['calibration']) }, { ...input, gpuSet: { key: 'h1/2-3', gpus: ['2', '3'], fake: false } });
    expect(spec.HostConfig?.DeviceRequests).toEqual([{ Driver: 'nvidia', DeviceIDs: ['2', '3'], Capabilities: [['gpu']] }]);
    expect(spec.Labels?.['lem.gpus']).toBe('2,3');
    expect(spec.Labels?.['lem.gpu-set']).toBe('h1/2-3');
    expect(spec.Env).toContain('LEM_GPU_UUIDS=h1:2,h1:3');
    expect(spec.name).toMatch(/-cpu-g-h1-2-3-1$/);
    const fake = containerSpec({ name: 'cpu', def, backends: new Set(['calibration']) }, { ...input, gpuSet: { key: 'h1/0', gpus: ['GPU-x'], fake: true } });
    expect(fake.HostConfig?.DeviceRequests).toEqual([]);
    expect(fake.Env).toContain('LEM_GPU_UUIDS=GPU-x');
  });

  it('a remote engine gets named volumes only: no bind of the controller\'s paths', () => {
    const spec = containerSpec({ name: 'cpu', def, backends: new Set(['calibration']) }, { ...input, remoteVolumes: remoteVolumesFor('c1') });
    expect(spec.HostConfig?.Binds).toEqual([`${remoteVolumesFor('c1').runs}:/ws/runs/c1`, 'lem-device-locks:/var/lib/lem-locks', 'cache:/cache']);
    const local = containerSpec({ name: 'cpu', def, backends: new Set(['calibration']) }, input);
    expect(local.HostConfig?.Binds).toContain('/ws/runs/c1:/ws/runs/c1');
  });
});
