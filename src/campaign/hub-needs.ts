/** What a campaign's experiments fetch from the Hugging Face hub (pure; the runtime decides the cache mount). */
import type { ExperimentConfig } from '../config/experiment.js';
import type { HubNeeds } from '../runtime/types.js';

/** A model id that names a local directory rather than a hub repository. */
function isLocalPath(id: string): boolean {
  return id.startsWith('/') || id.startsWith('./') || id.startsWith('../') || id.startsWith('~') || id === '.';
}

export function hubNeeds(configs: readonly ExperimentConfig[]): HubNeeds {
  const models = new Map<string, { id: string; revision: string | null }>();
  const datasets = new Set<string>();
  for (const c of configs) {
    if (!('model' in c)) continue; // not an llm-kind backend
    // no_weights still fetches the model's tokenizer (and config.json without an architecture).
    if (!isLocalPath(c.model.id)) {
      const revision = c.model.revision ?? null;
      models.set(`${c.model.id}@${revision ?? ''}`, { id: c.model.id, revision });
    }
    if (c.prompts.source === 'huggingface') datasets.add(c.prompts.dataset);
  }
  return { models: [...models.values()], datasets: [...datasets] };
}
