/**
 * Parallel GPU sets and a pool of Docker engines on the docker runtime: one docker runtime
 * (runtime.ts) per (host, GPU set), each with its own service containers per backend — labelled
 * with the set (`lem.gpu-set`, `lem.gpus`), their DeviceRequests naming exactly the set's GPU UUIDs
 * (none for a fake list) — so runs on disjoint sets run side by side. The runner places runs
 * (campaign/queues.ts); this file routes each dispatch to its set's runtime.
 *
 * Remote hosts share no filesystem with lem: services mount per-campaign named volumes, the run's
 * config goes in with putArchive and its files come back with getArchive (transfer.ts); results an
 * orphan left in the volume are fetched on resume (recoverResults). A host that stops answering
 * during a run is marked down: the run comes back with hostLost (the runner places it again on the
 * sets still there) and its sets are no longer offered. Handles carry the host: `docker:…@host`.
 */
import { existsSync } from 'node:fs';
import type { BackendName } from '../../contract/backends.js';
import type { DispatchOutcome, GpuSlot, LiveWorker, Runtime, RunSpec, RuntimeContext, WorkerToolResult } from '../types.js';
import { describeError, type Engine } from './engine.js';
import { gpuSetsOf, type GpuInfo } from './hosts.js';
import { createDockerRuntime, type DockerRuntimeOptions, type RunTransfer } from './runtime.js';
import { campaignRunsDir, LABELS, REMOTE_LOCKS_AT, remoteVolumesFor } from './service-spec.js';
import { fetchCampaignResults, fetchRunDir, putRunConfig, tarPack } from './transfer.js';
import { ownerLabels, sweepDeadThrowaways } from './throwaway.js';

export interface PoolHost {
  name: string;
  engine: Engine;
  gpuList: GpuInfo[];
  /** Fixed GPU sets (indices into gpuList); default: consecutive sets of the count a run needs. */
  gpuSets: number[][] | null;
  /** A fake GPU list (tests): no device requests. */
  fakeGpus: boolean;
  remote: boolean;
  close?: () => void;
}

export interface GpuPoolOptions extends Omit<DockerRuntimeOptions, 'gpus' | 'gpuSet' | 'engine' | 'transfer' | 'remote'> {
  /** The hosts, or how to connect to them (called once, on first use). */
  hosts: PoolHost[] | (() => Promise<PoolHost[]>);
  /** Seconds a host has to answer a ping after a failed run before it counts as lost. Default 5. */
  pingTimeoutS?: number;
}

type DockerRuntime = ReturnType<typeof createDockerRuntime>;

interface HostState {
  h: PoolHost;
  base: DockerRuntime;
  perSlot: Map<string, { runtime: DockerRuntime; ready: Promise<void> | null }>;
  down: string | null;
}

/** Run files over the archive API (a remote host): the lock directory and config in, results out. */
const remoteTransfer = (ctx: () => RuntimeContext): RunTransfer => ({
  async before(d, containerId, spec, user) {
    const locks = tarPack([{ name: 'locks', type: 'dir', mode: 0o1777, uid: 0, gid: 0 }]);
    await d.getContainer(containerId).putArchive(locks, { path: REMOTE_LOCKS_AT });
    await putRunConfig(d, containerId, campaignRunsDir(ctx()), spec.configPath, user);
  },
  async after(d, containerId, spec) {
    await fetchRunDir(d, containerId, spec.outDir);
  },
});

export function createGpuPoolRuntime(opts: GpuPoolOptions): Runtime & { serviceContainers(): Record<string, string>; hostsDown(): Record<string, string> } {
  const { hosts: hostsOpt, pingTimeoutS = 5, ...dockerOpts } = opts;
  let hostsP: Promise<Map<string, HostState>> | null = null;
  let hosts = new Map<string, HostState>();
  let prepared: { backends: readonly BackendName[]; ctx: RuntimeContext } | null = null;
  const log = (m: string): void => opts.log?.(m);

  function connect(): Promise<Map<string, HostState>> {
    hostsP ??= (async () => {
      const list = typeof hostsOpt === 'function' ? await hostsOpt() : hostsOpt;
      hosts = new Map(
        list.map((h) => {
          const runtimeOpts = { ...dockerOpts, engine: h.engine, remote: h.remote, ...(h.remote ? { transfer: remoteTransfer(() => ctxOf()) } : {}) };
          return [h.name, { h, base: createDockerRuntime(runtimeOpts), perSlot: new Map(), down: null }];
        }),
      );
      return hosts;
    })();
    return hostsP;
  }
  function ctxOf(): RuntimeContext {
    if (!prepared) throw new Error('docker runtime: dispatch() before prepare()');
    return prepared.ctx;
  }

  const slots = (count: number | null): GpuSlot[] =>
    [...hosts.values()].filter((s) => s.down === null).flatMap((s) => gpuSetsOf(s.h.name, s.h.gpuList, count, s.h.gpuSets));

  async function slotRuntime(s: HostState, slot: GpuSlot): Promise<DockerRuntime> {
    let entry = s.perSlot.get(slot.key);
    if (!entry) {
      const runtime = createDockerRuntime({
        ...dockerOpts,
        engine: s.h.engine,
        remote: s.h.remote,
        ...(s.h.remote ? { transfer: remoteTransfer(() => ctxOf()) } : {}),
        gpuSet: { key: slot.key, gpus: slot.gpus, fake: s.h.fakeGpus },
      });
      entry = { runtime, ready: null };
      s.perSlot.set(slot.key, entry);
    }
    const p = prepared;
    if (!p) throw new Error('docker runtime: dispatch() before prepare()');
    const e = entry;
    e.ready ??= e.runtime.prepare(p.backends, p.ctx).catch((err: unknown) => {
      e.ready = null;
      throw err;
    });
    await e.ready;
    return e.runtime;
  }

  /** Does the host still answer? Marks it down (and says so) when it does not. */
  async function alive(s: HostState): Promise<boolean> {
    if (s.down !== null) return false;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer in ${pingTimeoutS} s`)), pingTimeoutS * 1000)));
    try {
      await Promise.race([s.h.engine.docker.ping(), timeout]);
      return true;
    } catch (err) {
      s.down = `${s.h.engine.endpoint.description}: ${describeError(err)}`;
      log(`host ${s.h.name} stopped answering (${s.down}); its GPU sets are left out from now on`);
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  function hostOf(name: string): HostState {
    const s = hosts.get(name);
    if (!s) throw new Error(`docker runtime: no host ${name}`);
    return s;
  }

  const defaultSlot = (): GpuSlot => {
    const all = slots(null)[0];
    if (!all) throw new Error('docker runtime: no host with GPUs is up');
    return all;
  };

  const splitHandle = (handle: string): { inner: string; host: string | null } => {
    const at = handle.lastIndexOf('@');
    return at < 0 ? { inner: handle, host: null } : { inner: handle.slice(0, at), host: handle.slice(at + 1) };
  };

  /** Every reachable host's answer; an unreachable one is marked down and skipped. */
  async function eachHost<T>(f: (s: HostState) => Promise<T[]>): Promise<T[]> {
    const out: T[] = [];
    for (const s of (await connect()).values()) {
      if (!(await alive(s))) continue;
      out.push(...(await f(s)));
    }
    return out;
  }

  return {
    name: 'docker',
    slots,

    hostsDown(): Record<string, string> {
      return Object.fromEntries([...hosts.values()].flatMap((s) => (s.down === null ? [] : [[s.h.name, s.down]])));
    },

    async prepare(backends: readonly BackendName[], ctx: RuntimeContext): Promise<void> {
      prepared = { backends, ctx };
      for (const s of (await connect()).values()) {
        for (const e of s.perSlot.values()) e.ready = null;
        if (!(await alive(s))) log(`host ${s.h.name} is not reachable; the campaign runs on the others`);
      }
      if (slots(null).length === 0) throw new Error(`no host of the pool answers: ${Object.entries(this.hostsDown()).map(([k, v]) => `${k} (${v})`).join('; ')}`);
    },

    async dispatch(spec: RunSpec, signal: AbortSignal, onStarted: (handle: string) => void): Promise<DispatchOutcome> {
      await connect();
      const slot = spec.slot ?? defaultSlot();
      const s = hostOf(slot.host);
      const lost = (why: string, o: Partial<DispatchOutcome> = {}): DispatchOutcome => ({
        exitCode: o.exitCode ?? null,
        timedOut: false,
        failureReason: `host ${s.h.name} was lost during the run (${why}); the run is placed again on another host`,
        hostLost: true,
      });
      if (s.down !== null) return lost(s.down);
      let rt: DockerRuntime;
      try {
        rt = await slotRuntime(s, slot);
      } catch (err) {
        if (!(await alive(s))) return lost(s.down ?? describeError(err));
        return { exitCode: null, timedOut: false, failureReason: `cannot start the services of GPU set ${slot.key}: ${err instanceof Error ? err.message : String(err)}` };
      }
      const outcome = await rt.dispatch(spec, signal, (h) => onStarted(`${h}@${s.h.name}`));
      if ((outcome.exitCode !== 0 || outcome.failureReason !== null) && !signal.aborted && !(await alive(s))) return lost(s.down ?? 'no answer', outcome);
      return outcome;
    },

    async reap(handle: string): Promise<void> {
      await connect();
      const { inner, host } = splitHandle(handle);
      const s = host === null ? [...hosts.values()][0] : hosts.get(host);
      if (!s || !(await alive(s))) return; // a lost host's worker cannot be reached; its result is fetched if it comes back
      await s.base.reap(inner);
    },
    findWorkers: (campaignId: string): Promise<LiveWorker[]> => eachHost(async (s) => (await s.base.findWorkers(campaignId)).map((w) => ({ ...w, where: `${w.where} on ${s.h.name}` }))),
    stopWorkers: (campaignId: string): Promise<LiveWorker[]> => eachHost(async (s) => (await s.base.stopWorkers(campaignId)).map((w) => ({ ...w, where: `${w.where} on ${s.h.name}` }))),

    async recoverResults(campaignId: string, workspaceRoot: string): Promise<number> {
      const runs = campaignRunsDir({ workspaceRoot, campaignId });
      const volume = remoteVolumesFor(campaignId).runs;
      const fetched = await eachHost(async (s) => {
        if (!s.h.remote) return [];
        const d = s.h.engine.docker;
        const vols = await d.listVolumes({ filters: { name: [volume] } });
        if (!(vols.Volumes ?? []).some((v) => v.Name === volume)) return [];
        const image = (await d.listImages())[0]?.Id;
        if (!image) return [];
        // A created (never started) container with the volume: getArchive reads it.
        await sweepDeadThrowaways(d);
        const c = await d.createContainer({ Image: image, Cmd: ['true'], Labels: { [LABELS.managed]: 'lem', 'lem.role': 'fetch', ...ownerLabels() }, HostConfig: { Binds: [`${volume}:${runs}`], NetworkMode: 'none' } });
        try {
          return await fetchCampaignResults(d, c.id, runs, existsSync);
        } finally {
          await c.remove({ force: true }).catch(() => undefined);
        }
      });
      if (fetched.length > 0) log(`fetched ${fetched.length} result file(s) from remote hosts: ${fetched.map((f) => f.slice(runs.length + 1)).join(', ')}`);
      return fetched.length;
    },

    async workerTool(backend: BackendName, args: readonly string[], timeoutS: number, slot?: GpuSlot): Promise<WorkerToolResult> {
      await connect();
      const target = slot ?? defaultSlot();
      const rt = await slotRuntime(hostOf(target.host), target);
      return (rt.workerTool as NonNullable<Runtime['workerTool']>)(backend, args, timeoutS);
    },

    serviceContainers(): Record<string, string> {
      const out: Record<string, string> = {};
      for (const s of hosts.values()) for (const [key, e] of s.perSlot) for (const [svc, id] of Object.entries(e.runtime.serviceContainers())) out[`${svc}@${key}`] = id;
      return out;
    },

    async shutdown({ keepServices, campaignId }: { keepServices: boolean; campaignId?: string }): Promise<void> {
      const all = [...(await connect()).values()];
      const up = all.filter((s) => s.down === null);
      // Each set's runtime removes what it holds; then one sweep per host removes the campaign's leftovers.
      const released = await Promise.allSettled(up.flatMap((s) => [...s.perSlot.values()].map((e) => e.runtime.shutdown({ keepServices }))));
      for (const s of all) for (const e of s.perSlot.values()) e.ready = null;
      if (!keepServices && campaignId !== undefined) {
        for (const s of up) {
          released.push(...(await Promise.allSettled([s.base.shutdown({ keepServices, campaignId })])));
          // Every result was fetched after its run: the campaign's volume on a remote host can go.
          if (s.h.remote) await s.h.engine.docker.getVolume(remoteVolumesFor(campaignId).runs).remove().catch(() => undefined);
        }
      }
      for (const s of all) s.h.close?.();
      hostsP = null;
      const failed = released.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
    },
  };
}

/** The one host of today's single engine, with a GPU list (parallel GPU sets on one machine). */
export function localPoolHost(engine: Engine, gpuList: GpuInfo[], fakeGpus: boolean, gpuSets: number[][] | null = null): PoolHost {
  return { name: 'local', engine, gpuList, gpuSets, fakeGpus, remote: !engine.endpoint.local };
}
