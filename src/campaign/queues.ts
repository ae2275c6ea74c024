/**
 * Parallel GPU sets: runs go to disjoint GPU sets side by side, one queue (p-queue, concurrency 1)
 * per set. A set takes the earliest run of the campaign's plan that fits it (its GPU count), so the
 * order inside every set is the plan's order; a run starts only when every GPU of its set is free,
 * so two runs never share a GPU even when sets of different sizes overlap. The device lock in the
 * worker stays the guard across processes; this is the scheduler inside one lem.
 */
import PQueue from 'p-queue';
import type { GpuSlot } from '../runtime/types.js';

/**
 * What a run's work says when it ends: go on; stop taking new runs (interrupted); or place the run
 * again (its host was lost: it goes back to its place in the plan, on the sets still there of
 * the same GPU model).
 */
export type SlotVerdict = 'continue' | 'stop' | 'requeue';

export interface SlotPlan<T> {
  /** The runs, in the plan's order. */
  items: readonly T[];
  /** A run's GPU count (null: the experiment names none). */
  gpusOf(item: T): number | null;
  /** The sets a count can run on. */
  slotsFor(gpus: number | null): GpuSlot[];
  /** Runs one run on a set; `first` is true for the set's first run of this session. */
  work(item: T, slot: GpuSlot, first: boolean): Promise<SlotVerdict>;
  /** A requeued run fits no set any more (its hosts are gone): no new runs start; it is left for a resume. */
  onUnplaceable?(item: T): void;
}

/** Every GPU set the plan's runs can use (for deciding whether there is anything to run in parallel). */
export function slotsOfPlan<T>(plan: Pick<SlotPlan<T>, 'items' | 'gpusOf' | 'slotsFor'>): GpuSlot[] {
  const out = new Map<string, GpuSlot>();
  for (const gpus of new Set(plan.items.map((i) => plan.gpusOf(i)))) for (const s of plan.slotsFor(gpus)) out.set(s.key, s);
  return [...out.values()];
}

/**
 * Runs the plan on its GPU sets until every run ran or a run said stop (then the runs in flight
 * finish). A run whose count no set fits is an error before anything starts. The first error a run
 * throws stops the plan; it is thrown once the runs in flight have ended.
 */
export async function runOnSlots<T>(plan: SlotPlan<T>): Promise<void> {
  // The sets of each GPU count, asked again after a requeue (a lost host's sets are gone).
  let byCount = new Map<number | null, GpuSlot[]>();
  const slotsOf = (item: T): GpuSlot[] => {
    const n = plan.gpusOf(item);
    let s = byCount.get(n);
    if (!s) {
      s = plan.slotsFor(n);
      byCount.set(n, s);
    }
    return s;
  };
  const counts = [...new Set(plan.items.map((i) => plan.gpusOf(i)))];
  const allGpus = (): number =>
    new Set(
      counts.flatMap((n) => {
        let s = byCount.get(n);
        if (!s) byCount.set(n, (s = plan.slotsFor(n)));
        return s.flatMap((x) => x.gpus.map((g) => `${x.host}/${g}`));
      }),
    ).size;
  // A run placed again after a host loss keeps to its first set's GPU model (when that is known).
  const pending: Array<{ item: T; order: number; model?: string }> = plan.items.map((item, order) => ({ item, order }));
  const fits = (p: (typeof pending)[number]): GpuSlot[] => (p.model === undefined ? slotsOf(p.item) : slotsOf(p.item).filter((s) => s.model === p.model));
  const unplaceable = pending.find((p) => slotsOf(p.item).length === 0);
  if (unplaceable) throw new Error(`no GPU set fits a run needing ${plan.gpusOf(unplaceable.item) ?? 'all'} GPU(s)`);
  let gpuCount = allGpus();
  const busyGpus = new Set<string>();
  const busySlots = new Set<string>();
  const started = new Set<string>();
  const queues = new Map<string, PQueue>();
  const gpuKey = (s: GpuSlot, g: string): string => `${s.host}/${g}`;
  let stopped = false;
  let failure: { error: unknown } | null = null;
  let inFlight = 0;

  return new Promise<void>((resolve, reject) => {
    const finish = (): void => {
      if (inFlight > 0) return;
      if (failure) reject(failure.error);
      else if (stopped || pending.length === 0) resolve();
    };
    const pump = (): void => {
      if (!stopped && failure === null) {
        for (let i = 0; i < pending.length && busyGpus.size < gpuCount; i++) {
          const p = pending[i] as (typeof pending)[number];
          const slot = fits(p).find((s) => !busySlots.has(s.key) && s.gpus.every((g) => !busyGpus.has(gpuKey(s, g))));
          if (!slot) continue;
          pending.splice(i--, 1);
          busySlots.add(slot.key);
          for (const g of slot.gpus) busyGpus.add(gpuKey(slot, g));
          const first = !started.has(slot.key);
          started.add(slot.key);
          inFlight++;
          let queue = queues.get(slot.key);
          if (!queue) {
            queue = new PQueue({ concurrency: 1 });
            queues.set(slot.key, queue);
          }
          queue
            .add(() => plan.work(p.item, slot, first))
            .then(
              (verdict) => {
                if (verdict === 'stop') stopped = true;
                if (verdict !== 'requeue') return;
                byCount = new Map();
                if (slot.model !== null) p.model ??= slot.model;
                if (fits(p).length === 0) {
                  stopped = true;
                  plan.onUnplaceable?.(p.item);
                  return;
                }
                gpuCount = allGpus();
                const at = pending.findIndex((q) => q.order > p.order);
                pending.splice(at < 0 ? pending.length : at, 0, p);
              },
              (error: unknown) => {
                failure ??= { error };
              },
            )
            .finally(() => {
              inFlight--;
              busySlots.delete(slot.key);
              for (const g of slot.gpus) busyGpus.delete(gpuKey(slot, g));
              pump();
            })
            .catch(() => undefined);
        }
      }
      finish();
    };
    pump();
  });
}
