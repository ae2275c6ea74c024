/**
 * JSON Schema exports of lem's zod schemas, for other tools and editors:
 * schemas/result.schema.json, schemas/experiment.schema.json, schemas/campaign.schema.json, and the
 * backend registry as schemas/backends.json. The worker's three (experiment, result, backends) are
 * also written into images/worker/lem_worker/schemas/, where the worker reads them locally, in the
 * images (COPY of lem_worker) and through the worker mount. `npm run build` rewrites them all; a
 * test checks the committed files are current.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { BACKEND_REGISTRY } from '../contract/backends.js';
import { join } from 'node:path';
import { z } from 'zod';
import { CampaignFile } from './campaign.js';
import { ExperimentConfig, MOVED_EXTRA_KNOBS } from './experiment.js';
import { packageRoot } from '../util/paths.js';
import { resultJsonSchema } from '../contract/result-parse.js';

export function jsonSchemas(): Record<string, unknown> {
  return {
    'result.schema.json': resultJsonSchema(),
    'experiment.schema.json': z.toJSONSchema(ExperimentConfig, { target: 'draft-2020-12', io: 'input', unrepresentable: 'any' }),
    'campaign.schema.json': z.toJSONSchema(CampaignFile, { target: 'draft-2020-12', io: 'input', unrepresentable: 'any' }),
    'backends.json': { schema: 'lem.backends/1', backends: BACKEND_REGISTRY, moved_extra_knobs: MOVED_EXTRA_KNOBS },
  };
}

/** The files the Python worker reads (copied into its package, so images and mounts carry them). */
export const WORKER_SCHEMAS = ['experiment.schema.json', 'result.schema.json', 'backends.json'] as const;
export const WORKER_SCHEMA_DIR = join('images', 'worker', 'lem_worker', 'schemas');

export function renderSchema(schema: unknown): string {
  return `${JSON.stringify(schema, null, 2)}\n`;
}

if (process.argv[1] && import.meta.url === `file://${process.argv[1]}`) {
  const dir = join(packageRoot(), 'schemas');
  mkdirSync(dir, { recursive: true });
  const workerDir = join(packageRoot(), WORKER_SCHEMA_DIR);
  mkdirSync(workerDir, { recursive: true });
  for (const [name, schema] of Object.entries(jsonSchemas())) {
    writeFileSync(join(dir, name), renderSchema(schema));
    if ((WORKER_SCHEMAS as readonly string[]).includes(name)) writeFileSync(join(workerDir, name), renderSchema(schema));
  }
}
