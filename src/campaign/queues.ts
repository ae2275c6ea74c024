/**
 * Parallel GPU sets: runs go to disjoint GPU sets side by side, one queue (p-queue, concurrency 1)
 * per set. A set takes the earliest run of the campaign's plan that fits it (its GPU count), so the
 * order inside every set is the plan's order; a run starts only when every GPU of its set is free,
 * so two runs never share a GPU even when sets of different sizes overlap. The device lock in the
 * worker stays the guard across processes; this is the scheduler inside one lem.
 */
import PQueue from 'p-queue';
import type { GpuSlot } from '../runtime/types.js';

/** What a run's work says when it ends: go on, or stop taking new runs (interrupted). */
export type SlotVerdict = 'continue' | 'stop';

export interface SlotPlan<T> {
  /** The runs, in the plan's order. */
  items: readonly T[];
  /** A run's GPU count (null: the experiment names none). */
  gpusOf(item: T): number | null;
  /** The sets a count can run on. */
  slotsFor(gpus: number | null): GpuSlot[];
  /** Runs one run on a set; `first` is true for the set's first run of this session. */
  work(item: T, slot: GpuSlot, first: boolean): Promise<SlotVerdict>;
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
  const pending = plan.items.map((item) => ({ item, slots: plan.slotsFor(plan.gpusOf(item)) }));
  const unplaceable = pending.find((p) => p.slots.length === 0);
  if (unplaceable) throw new Error(`no GPU set fits a run needing ${plan.gpusOf(unplaceable.item) ?? 'all'} GPU(s)`);
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
        for (let i = 0; i < pending.length; i++) {
          const p = pending[i] as (typeof pending)[number];
          const slot = p.slots.find((s) => !busySlots.has(s.key) && s.gpus.every((g) => !busyGpus.has(gpuKey(s, g))));
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
