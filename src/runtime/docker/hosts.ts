/**
 * A host's GPUs and the GPU sets runs are placed on. Pure: no engine calls.
 *
 * The GPU list comes from the host's configuration or, for tests on machines without GPUs, from
 * $LEM_FAKE_GPUS: `UUID=MODEL,UUID=MODEL,…` (a fake list: services get no device request, only the
 * label and LEM_GPU_UUIDS, and the worker locks those UUIDs as its devices).
 */
import { LemError } from '../../util/errors.js';
import type { GpuSlot } from '../types.js';

export interface GpuInfo {
  /** The NVML UUID (`GPU-…`), or the index as text when the UUID is not known. */
  uuid: string;
  model: string | null;
}

/** Parses `UUID=MODEL,UUID=MODEL,…` (MODEL optional); a clear error names the variable. */
export function parseGpuList(text: string, source = 'LEM_FAKE_GPUS'): GpuInfo[] {
  const out: GpuInfo[] = [];
  for (const part of text.split(',').map((p) => p.trim()).filter((p) => p.length > 0)) {
    const [uuid = '', model = ''] = part.split('=', 2).map((x) => x.trim());
    if (!/^[A-Za-z0-9][A-Za-z0-9._:-]*$/.test(uuid)) throw new LemError(`${source}: ${JSON.stringify(part)} is not UUID=MODEL (e.g. GPU-0a1b=A100)`);
    if (out.some((g) => g.uuid === uuid)) throw new LemError(`${source}: GPU ${uuid} is listed twice`);
    out.push({ uuid, model: model.length > 0 ? model : null });
  }
  if (out.length === 0) throw new LemError(`${source} lists no GPU`);
  return out;
}

/**
 * The GPU sets of one host for runs needing `count` GPUs: the host's fixed sets of that size when it
 * has any (`gpu_sets`, as indices into its GPU list), else its GPUs in order, cut into consecutive
 * sets of `count` (a remainder is left idle). `count` null: one set of every GPU. A set mixing GPU
 * models is never made from the default cut (each model is cut on its own).
 */
export function gpuSetsOf(host: string, gpus: readonly GpuInfo[], count: number | null, fixed: readonly (readonly number[])[] | null = null): GpuSlot[] {
  const slot = (indices: readonly number[]): GpuSlot => {
    const members = indices.map((i) => gpus[i] as GpuInfo);
    const models = [...new Set(members.map((g) => g.model))];
    return { key: `${host}/${indices.join('-')}`, host, gpus: members.map((g) => g.uuid), model: models.length === 1 ? (models[0] ?? null) : null };
  };
  if (count === null) return gpus.length > 0 ? [{ ...slot(gpus.map((_, i) => i)), key: `${host}/all` }] : [];
  if (fixed !== null && fixed.length > 0) {
    for (const set of fixed) {
      const bad = set.find((i) => !Number.isInteger(i) || i < 0 || i >= gpus.length);
      if (bad !== undefined) throw new LemError(`host ${host}: gpu_sets names GPU ${bad}, but the host has ${gpus.length} (0–${gpus.length - 1})`);
    }
    return fixed.filter((s) => s.length === count).map(slot);
  }
  const byModel = new Map<string | null, number[]>();
  gpus.forEach((g, i) => byModel.set(g.model, [...(byModel.get(g.model) ?? []), i]));
  const out: GpuSlot[] = [];
  for (const indices of byModel.values()) {
    for (let i = 0; i + count <= indices.length; i += count) out.push(slot(indices.slice(i, i + count)));
  }
  return out;
}
