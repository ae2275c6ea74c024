/**
 * The Hugging Face cache mount decision (no engine needed): read-only when everything the campaign
 * loads from the hub is cached, read-write when a model must be downloaded or a dataset is used.
 * Against real directory trees laid out as huggingface_hub lays out its cache.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hubNeeds } from '../../src/campaign/hub-needs.js';
import { ExperimentConfig } from '../../src/config/experiment.js';
import { hfCacheAccess, modelCached } from '../../src/runtime/docker/hf-cache.js';
import { tempWorkspace } from './engine.js';

function cacheWith(models: { id: string; snapshot: string; ref?: string }[]): string {
  const hub = join(tempWorkspace('lem-hfcache-'), 'hub');
  for (const m of models) {
    const dir = join(hub, `models--${m.id.replace('/', '--')}`);
    mkdirSync(join(dir, 'snapshots', m.snapshot), { recursive: true });
    if (m.ref) {
      mkdirSync(join(dir, 'refs'), { recursive: true });
      writeFileSync(join(dir, 'refs', m.ref), m.snapshot);
    }
  }
  return hub;
}

describe('HF cache access', () => {
  it('read-only when every model is cached (by branch ref or commit; unpinned = refs/main); read-write when one is missing', () => {
    const hub = cacheWith([{ id: 'org/a', snapshot: 'abc123', ref: 'main' }]);
    expect(modelCached(hub, 'org/a', null)).toBe(true);
    expect(modelCached(hub, 'org/a', 'main')).toBe(true);
    expect(modelCached(hub, 'org/a', 'abc123')).toBe(true);
    expect(modelCached(hub, 'org/a', 'v2')).toBe(false);
    // A snapshot without refs/main (fetched by commit only) does not serve an unpinned offline load.
    const byCommit = cacheWith([{ id: 'org/p', snapshot: 'def456' }]);
    expect(modelCached(byCommit, 'org/p', 'def456')).toBe(true);
    expect(modelCached(byCommit, 'org/p', null)).toBe(false);
    expect(hfCacheAccess(hub, { models: [{ id: 'org/a', revision: null }], datasets: [] })).toMatchObject({ writable: false });
    expect(hfCacheAccess(hub, { models: [{ id: 'org/a', revision: null }, { id: 'org/b', revision: null }], datasets: [] })).toEqual({
      writable: true,
      reason: 'model org/b is not in the cache yet (a download is needed)',
    });
    expect(hfCacheAccess(hub, { models: [], datasets: ['squad'] }).writable).toBe(true);
    expect(hfCacheAccess(hub, undefined)).toEqual({ writable: false, reason: 'the campaign downloads nothing' });
  });

  it('hubNeeds: hub models (no_weights too: tokenizer), datasets; never calibration or local paths', () => {
    const configs = [
      ExperimentConfig.parse({ backend: 'calibration' }),
      ExperimentConfig.parse({ backend: 'pytorch', model: { id: 'org/a', revision: 'main' } }),
      ExperimentConfig.parse({ backend: 'vllm', model: { id: 'org/a', revision: 'main' } }),
      ExperimentConfig.parse({ backend: 'pytorch', model: { id: 'org/tiny', no_weights: true } }),
      ExperimentConfig.parse({ backend: 'pytorch', model: { id: '/models/local' } }),
      ExperimentConfig.parse({ backend: 'pytorch', model: { id: 'org/c' }, prompts: { source: 'huggingface', dataset: 'org/prompts' } }),
    ];
    expect(hubNeeds(configs)).toEqual({
      models: [
        { id: 'org/a', revision: 'main' },
        { id: 'org/tiny', revision: null },
        { id: 'org/c', revision: null },
      ],
      datasets: ['org/prompts'],
    });
  });
});
