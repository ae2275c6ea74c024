import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { jsonSchemas, renderSchema, WORKER_SCHEMA_DIR, WORKER_SCHEMAS } from '../../src/config/json-schemas.js';
import { ROOT } from '../helpers/cli.js';

describe('JSON Schema exports', () => {
  for (const [name, schema] of Object.entries(jsonSchemas())) {
    it(`schemas/${name} is current (run npm run build and commit it)`, () => {
      expect(readFileSync(join(ROOT, 'schemas', name), 'utf8')).toBe(renderSchema(schema));
    });
  }

  for (const name of WORKER_SCHEMAS) {
    it(`the worker's copy ${WORKER_SCHEMA_DIR}/${name} is current (run npm run build and commit it)`, () => {
      expect(readFileSync(join(ROOT, WORKER_SCHEMA_DIR, name), 'utf8')).toBe(renderSchema(jsonSchemas()[name]));
    });
  }

  it('the experiment schema lists the backends as alternatives', () => {
    const s = JSON.stringify(jsonSchemas()['experiment.schema.json']);
    for (const b of ['pytorch', 'vllm', 'tensorrt', 'calibration']) expect(s).toContain(`"const":"${b}"`);
  });
});
