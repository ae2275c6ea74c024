/**
 * Parallel GPU sets on the docker runtime: one docker runtime (runtime.ts) per GPU set, each with
 * its own service containers per backend — labelled with the set (`lem.gpu-set`, `lem.gpus`), their
 * DeviceRequests naming exactly the set's GPU UUIDs — so runs on disjoint sets run side by side.
 * The runner places runs (campaign/queues.ts); this file routes each dispatch to its set's runtime.
 *
 * A set's services are started on its first run. Finding, stopping and reaping leftover workers
 * goes through one runtime of the engine: they are found by the campaign's label on any container.
 */
import type { BackendName } from '../../config/backends.js';
import type { DispatchOutcome, GpuSlot, LiveWorker, Runtime, RunSpec, RuntimeContext, WorkerToolResult } from '../types.js';
import { connectEngine } from './engine.js';
import { gpuSetsOf, type GpuInfo } from './hosts.js';
import { createDockerRuntime, type DockerRuntimeOptions } from './runtime.js';

export interface GpuPoolOptions extends Omit<DockerRuntimeOptions, 'gpus' | 'gpuSet'> {
  /** The host's name in slot keys, manifest notes and labels. Default `local`. */
  hostName?: string;
  gpuList: GpuInfo[];
  /** A fake GPU list (tests): no device requests. */
  fakeGpus: boolean;
  /** Fixed GPU sets (indices into gpus); default: consecutive sets of the count a run needs. */
  gpuSets?: number[][] | null;
}

type DockerRuntime = ReturnType<typeof createDockerRuntime>;

export function createGpuPoolRuntime(opts: GpuPoolOptions): Runtime & { serviceContainers(): Record<string, string> } {
  const host = opts.hostName ?? 'local';
  const engine = opts.engine ?? connectEngine(opts.env ?? process.env);
  const { gpuList: _list, fakeGpus: _fake, gpuSets: _sets, hostName: _host, ...dockerOpts } = opts;
  const base: DockerRuntime = createDockerRuntime({ ...dockerOpts, engine });
  const perSlot = new Map<string, { runtime: DockerRuntime; ready: Promise<void> | null }>();
  let prepared: { backends: readonly BackendName[]; ctx: RuntimeContext } | null = null;

  const slots = (count: number | null): GpuSlot[] => gpuSetsOf(host, opts.gpuList, count, opts.gpuSets ?? null);

  /** The set's runtime, its services prepared (once; a failed start is tried again on the next run). */
  async function slotRuntime(slot: GpuSlot): Promise<DockerRuntime> {
    let entry = perSlot.get(slot.key);
    if (!entry) {
      const runtime = createDockerRuntime({ ...dockerOpts, engine, gpuSet: { key: slot.key, gpus: slot.gpus, fake: opts.fakeGpus } });
      entry = { runtime, ready: null };
      perSlot.set(slot.key, entry);
    }
    if (!prepared) throw new Error('docker runtime: dispatch() before prepare()');
    const p = prepared;
    const e = entry;
    e.ready ??= e.runtime.prepare(p.backends, p.ctx).catch((err: unknown) => {
      e.ready = null;
      throw err;
    });
    await e.ready;
    return e.runtime;
  }

  /** A run the runner did not place (one set only, or an older caller): the set of every GPU. */
  const defaultSlot = (): GpuSlot => {
    const all = slots(null)[0];
    if (!all) throw new Error('docker runtime: the GPU list is empty');
    return all;
  };

  return {
    name: 'docker',
    slots,

    async prepare(backends: readonly BackendName[], ctx: RuntimeContext): Promise<void> {
      prepared = { backends, ctx };
      for (const e of perSlot.values()) e.ready = null;
      await engine.docker.version();
    },

    async dispatch(spec: RunSpec, signal: AbortSignal, onStarted: (handle: string) => void): Promise<DispatchOutcome> {
      const slot = spec.slot ?? defaultSlot();
      let rt: DockerRuntime;
      try {
        rt = await slotRuntime(slot);
      } catch (err) {
        return { exitCode: null, timedOut: false, failureReason: `cannot start the services of GPU set ${slot.key}: ${err instanceof Error ? err.message : String(err)}` };
      }
      return rt.dispatch(spec, signal, onStarted);
    },

    reap: (handle: string) => base.reap(handle),
    findWorkers: (campaignId: string): Promise<LiveWorker[]> => base.findWorkers(campaignId),
    stopWorkers: (campaignId: string): Promise<LiveWorker[]> => base.stopWorkers(campaignId),

    async workerTool(backend: BackendName, args: readonly string[], timeoutS: number, slot?: GpuSlot): Promise<WorkerToolResult> {
      const rt = await slotRuntime(slot ?? defaultSlot());
      return (rt.workerTool as NonNullable<Runtime['workerTool']>)(backend, args, timeoutS);
    },

    serviceContainers(): Record<string, string> {
      const out: Record<string, string> = {};
      for (const [key, e] of perSlot) for (const [svc, id] of Object.entries(e.runtime.serviceContainers())) out[`${svc}@${key}`] = id;
      return out;
    },

    async shutdown({ keepServices, campaignId }: { keepServices: boolean; campaignId?: string }): Promise<void> {
      // Each set's runtime removes what it holds; then one sweep removes leftovers of the campaign.
      const released = await Promise.allSettled([...perSlot.values()].map((e) => e.runtime.shutdown({ keepServices })));
      for (const e of perSlot.values()) e.ready = null;
      if (!keepServices && campaignId !== undefined) await base.shutdown({ keepServices, campaignId });
      const failed = released.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
    },
  };
}
