/** The pieces behind the input limits: the arithmetic grid count, the model id rule, "did you mean". */
import { describe, expect, it } from 'vitest';
import { countGrid, expandGrid } from '../../src/config/grid.js';
import { isValidModelId } from '../../src/config/experiment.js';
import { didYouMean, editDistance } from '../../src/config/vocabulary.js';

const never = (): never => {
  throw new Error('unexpected grid failure');
};

describe('countGrid', () => {
  it('counts what expandGrid builds, backend-aware, without building it', () => {
    const base = { model: { id: 'gpt2' }, precision: 'fp16' };
    const vary = { backend: ['calibration', 'pytorch', 'vllm'], 'batching.batch_size': [1, 4, 8], 'pytorch.torch_compile': [true, false], 'calibration.matrix_size': [16, 32] };
    const built = expandGrid(base, vary, never);
    // Nothing is dropped in this grid, so the count is exact: calibration 2, pytorch 3×2, vllm 3.
    expect(countGrid(base, vary)).toBe(2 + 6 + 3);
    expect(built.combos).toHaveLength(countGrid(base, vary));
  });

  it('counts a ten-million-combination grid instantly (no expansion)', () => {
    const ten = Array.from({ length: 10 }, (_, i) => i + 1);
    const vary = Object.fromEntries(['a', 'b', 'c', 'd', 'e', 'f', 'g'].map((k) => [`measurement.${k}`, ten]));
    expect(countGrid({ backend: 'calibration' }, vary)).toBe(10_000_000);
  });
});

describe('model id rule', () => {
  it.each(['gpt2', 'meta-llama/Llama-3.2-1B', 'Qwen/Qwen2.5-0.5B-Instruct', 'org_1/model.v2', '/models/llama', '/srv/hf cache/x'])('accepts %j', (id) => {
    expect(isValidModelId(id)).toBe(true);
  });
  it.each(['gpt2\nrm -rf /', 'gpt2\u0000', '$(touch /tmp/x)', '`id`', '../..', '../../etc/passwd', 'a/b/c', '-model', 'org/model-', 'a--b', 'a..b', '/models/../etc', `x${'y'.repeat(96)}`, ''])(
    'rejects %j',
    (id) => {
      expect(isValidModelId(id)).toBe(false);
    },
  );
});

describe('did you mean', () => {
  it('suggests the closest known field for a typo, preferring a transposition', () => {
    expect(didYouMean('campain_name')).toBe('campaign_name');
    expect(didYouMean('modle')).toBe('model');
    expect(didYouMean('precison')).toBe('precision');
    expect(didYouMean('batchsize')).toBe('batch_size');
    expect(didYouMean('completely_unrelated_key')).toBeNull();
    expect(editDistance('ab', 'ba')).toBe(1);
  });
});
