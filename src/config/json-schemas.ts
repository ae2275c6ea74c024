/**
 * JSON Schema exports of lem's zod schemas, for other tools and editors:
 * schemas/result.schema.json, schemas/experiment.schema.json, schemas/campaign.schema.json.
 * `npm run build` rewrites them; a test checks the committed files are current.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { CampaignFile } from './campaign.js';
import { ExperimentConfig } from './experiment.js';
import { packageRoot } from '../util/paths.js';
import { resultJsonSchema } from '../contract/result.js';

export function jsonSchemas(): Record<string, unknown> {
  return {
    'result.schema.json': resultJsonSchema(),
    'experiment.schema.json': z.toJSONSchema(ExperimentConfig, { target: 'draft-2020-12', io: 'input', unrepresentable: 'any' }),
    'campaign.schema.json': z.toJSONSchema(CampaignFile, { target: 'draft-2020-12', io: 'input', unrepresentable: 'any' }),
  };
}

export function renderSchema(schema: unknown): string {
  return `${JSON.stringify(schema, null, 2)}\n`;
}

if (process.argv[1] && import.meta.url === `file://${process.argv[1]}`) {
  const dir = join(packageRoot(), 'schemas');
  mkdirSync(dir, { recursive: true });
  for (const [name, schema] of Object.entries(jsonSchemas())) writeFileSync(join(dir, name), renderSchema(schema));
}
