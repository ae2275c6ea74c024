import { describe, expect, it } from 'vitest';
import { parseSource } from '../../src/config/source.js';
import { expandGrid } from '../../src/config/grid.js';
import { experimentId, canonicalJson } from '../../src/config/identity.js';
import { ExperimentConfig } from '../../src/config/experiment.js';

const never = (): never => {
  throw new Error('unexpected hard failure');
};

describe('grid expansion', () => {
  it('crosses common keys for every backend and section keys only with their own backend', () => {
    const { combos, notes } = expandGrid(
      { model: { id: 'm' } },
      {
        backend: ['pytorch', 'vllm'],
        precision: ['bf16', 'fp16'],
        'pytorch.attn_implementation': ['sdpa', 'eager', 'flash_attention_2'],
        'vllm.enforce_eager': [true, false],
      },
      never,
    );
    const pt = combos.filter((c) => c.config.backend === 'pytorch');
    const vl = combos.filter((c) => c.config.backend === 'vllm');
    expect(pt).toHaveLength(2 * 3);
    expect(vl).toHaveLength(2 * 2);
    expect(new Set(pt.map((c) => JSON.stringify(c.assignment))).size).toBe(6);
    for (const c of vl) expect(c.assignment).not.toHaveProperty('pytorch.attn_implementation');
    expect(notes.some((n) => n.includes('backend vllm') && n.includes('pytorch.attn_implementation'))).toBe(true);
    expect(notes.some((n) => n.includes('backend pytorch') && n.includes('vllm.enforce_eager'))).toBe(true);
  });

  it('drops combinations that break a backend rule, with a note naming them', () => {
    const { combos, notes } = expandGrid(
      { model: { id: 'm' } },
      { backend: ['pytorch', 'vllm'], 'quantization.method': ['none', 'bnb_4bit'] },
      never,
    );
    const kept = combos.map((c) => `${c.config.backend}/${c.assignment['quantization.method'] as string}`).sort();
    expect(kept).toEqual(['pytorch/bnb_4bit', 'pytorch/none', 'vllm/none']);
    expect(notes.filter((n) => n.startsWith('dropped'))).toHaveLength(1);
    expect(notes.find((n) => n.startsWith('dropped'))).toMatch(/backend=vllm.*bnb_4bit.*only available on the pytorch backend/);
  });

  it('does not carry LLM fields into calibration experiments', () => {
    const { combos } = expandGrid({ model: { id: 'm' }, precision: 'fp16' }, { backend: ['calibration', 'pytorch'], 'batching.batch_size': [1, 4] }, never);
    expect(combos.filter((c) => c.config.backend === 'calibration')).toHaveLength(1);
    expect(combos.filter((c) => c.config.backend === 'pytorch')).toHaveLength(2);
  });

  it('reports a wrong value as a hard failure naming the vary key and index', () => {
    let seen: { key: string | null; valueIndex: number | null } | null = null;
    expect(() =>
      expandGrid({ backend: 'pytorch', model: { id: 'm' } }, { 'batching.batch_size': [1, 'x'] }, (f) => {
        seen = { key: f.key, valueIndex: f.valueIndex };
        throw new Error('stop');
      }),
    ).toThrow('stop');
    expect(seen).toEqual({ key: 'batching.batch_size', valueIndex: 1 });
  });
});

describe('experiment identity', () => {
  it('is the same for the same resolved config whatever the key order or the name', () => {
    const a = ExperimentConfig.parse({ backend: 'calibration', calibration: { matrix_size: 64, duration_s: 1 } });
    const b = ExperimentConfig.parse({ calibration: { duration_s: 1, matrix_size: 64 }, backend: 'calibration', name: 'other' });
    expect(canonicalJson({ ...a, name: undefined })).toBe(canonicalJson({ ...b, name: undefined }));
    expect(experimentId(a as Record<string, unknown>)).toBe(experimentId(b as Record<string, unknown>));
  });

  it('differs when any measured setting differs, defaults included', () => {
    const base = ExperimentConfig.parse({ backend: 'calibration' });
    const changed = ExperimentConfig.parse({ backend: 'calibration', calibration: { matrix_size: 257 } });
    const sameAsDefault = ExperimentConfig.parse({ backend: 'calibration', calibration: { matrix_size: base.backend === 'calibration' ? base.calibration.matrix_size : 0 } });
    expect(experimentId(base as Record<string, unknown>)).not.toBe(experimentId(changed as Record<string, unknown>));
    expect(experimentId(base as Record<string, unknown>)).toBe(experimentId(sameAsDefault as Record<string, unknown>));
  });
});

describe('source locations', () => {
  it('locates nested values and list items by line and column', () => {
    const src = parseSource('x.yaml', 'a: 1\nb:\n  c:\n    - 10\n    - 20\n');
    expect(src.locate(['b', 'c', 1])).toEqual({ file: 'x.yaml', line: 5, column: 7 });
    expect(src.locate(['a'])).toEqual({ file: 'x.yaml', line: 1, column: 4 });
    // A missing key points at its nearest existing parent.
    expect(src.locate(['b', 'missing'])).toMatchObject({ line: 3 });
  });
});
