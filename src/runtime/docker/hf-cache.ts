/**
 * Whether the Hugging Face cache must be mounted read-write: only when the campaign needs a
 * download. A model is cached when `<hub cache>/models--<org>--<name>/` has `refs/<revision>` or
 * `snapshots/<revision>` (no revision: `main`, as huggingface_hub resolves it offline). Datasets always need a
 * writable cache (the datasets library writes its processed files under HF_HOME).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { HubNeeds } from '../types.js';

export interface HfCacheAccess {
  writable: boolean;
  /** Why, for the log: which model or dataset needs the download, or that everything is cached. */
  reason: string;
}

function repoDir(hubCache: string, kind: 'models' | 'datasets', id: string): string {
  return join(hubCache, `${kind}--${id.split('/').join('--')}`);
}

export function modelCached(hubCache: string, id: string, revision: string | null): boolean {
  const dir = repoDir(hubCache, 'models', id);
  // No revision means `main`, which offline loading resolves through refs/main.
  const rev = revision ?? 'main';
  try {
    return existsSync(join(dir, 'refs', rev)) || existsSync(join(dir, 'snapshots', rev));
  } catch {
    return false;
  }
}

/** hubCache: $HF_HUB_CACHE, default <HF_HOME>/hub. */
export function hfCacheAccess(hubCache: string, needs: HubNeeds | undefined): HfCacheAccess {
  const first = needs?.datasets[0];
  if (first !== undefined) return { writable: true, reason: `dataset ${first} is used as prompts (the datasets library writes its cache)` };
  for (const m of needs?.models ?? []) {
    if (!modelCached(hubCache, m.id, m.revision)) {
      return { writable: true, reason: `model ${m.id}${m.revision ? `@${m.revision}` : ''} is not in the cache yet (a download is needed)` };
    }
  }
  const n = needs?.models.length ?? 0;
  return { writable: false, reason: n > 0 ? `all ${n} model(s) are cached; offline (HF_HUB_OFFLINE=1)` : 'the campaign downloads nothing' };
}
