import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { jsonSchemas, renderSchema } from '../../src/config/json-schemas.js';
import { ROOT } from '../helpers/cli.js';

describe('JSON Schema exports', () => {
  for (const [name, schema] of Object.entries(jsonSchemas())) {
    it(`schemas/${name} is current (run npm run build and commit it)`, () => {
      expect(readFileSync(join(ROOT, 'schemas', name), 'utf8')).toBe(renderSchema(schema));
    });
  }

  it('the experiment schema lists the backends as alternatives', () => {
    const s = JSON.stringify(jsonSchemas()['experiment.schema.json']);
    for (const b of ['pytorch', 'vllm', 'tensorrt', 'calibration']) expect(s).toContain(`"const":"${b}"`);
  });
});
