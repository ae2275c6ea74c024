import { describe, expect, it } from 'vitest';
import { axisApplies, BACKEND_REGISTRY, BACKENDS, DEFAULT_SERVICES } from '../../src/contract/backends.js';
import { ExperimentConfig, MOVED_EXTRA_KNOBS } from '../../src/config/experiment.js';
import { expandGrid } from '../../src/config/grid.js';
import { defaultComposeFiles, loadCompose } from '../../src/runtime/docker/compose.js';
import { ROOT } from '../helpers/cli.js';

const llm = { model: { id: 'org/m' } };
const withModel = (b: string) => (BACKEND_REGISTRY[b as keyof typeof BACKEND_REGISTRY].kind === 'llm' ? { backend: b, ...llm } : { backend: b });

describe('backend registry', () => {
  it("each backend's config gets its own section (with defaults) under the registry's key, and no other", () => {
    for (const b of BACKENDS) {
      const cfg = ExperimentConfig.parse(withModel(b)) as Record<string, unknown>;
      expect(cfg[BACKEND_REGISTRY[b].section], b).toBeTypeOf('object');
      for (const other of BACKENDS.filter((o) => o !== b)) expect(cfg[BACKEND_REGISTRY[other].section], `${b} has ${other}`).toBeUndefined();
    }
  });

  it('every refusal the registry lists is what a config with that value gets, with its reason', () => {
    for (const b of BACKENDS) {
      for (const rule of BACKEND_REGISTRY[b].invalid) {
        for (const v of rule.values) {
          const [head, leaf] = rule.field.split('.') as [string, string | undefined];
          const patch = leaf === undefined ? { [head]: v } : { [head]: { [leaf]: v, ...(leaf === 'strategy' ? { max_tokens_per_batch: 64 } : {}) } };
          const r = ExperimentConfig.safeParse({ ...withModel(b), ...patch });
          expect(r.success, `${b} ${rule.field}=${v}`).toBe(false);
          expect(r.error?.issues.map((i) => i.message)).toContain(rule.why);
        }
      }
    }
  });

  it('a grid drops a refused combination with the registry reason and crosses sections only with their backend', () => {
    const { combos, notes } = expandGrid(
      { ...llm },
      { backend: ['pytorch', 'vllm'], precision: ['bf16', 'fp8'], 'vllm.max_num_seqs': [4] },
      (f) => {
        throw f.error;
      },
    );
    expect(combos.map((c) => `${c.config.backend}/${'precision' in c.config ? c.config.precision : ''}`).sort()).toEqual(['pytorch/bf16', 'vllm/bf16', 'vllm/fp8']);
    expect(notes.join('\n')).toContain(BACKEND_REGISTRY.pytorch.invalid[0]?.why);
    expect(axisApplies('vllm.max_num_seqs', 'pytorch')).toBe(false);
    expect(axisApplies('precision', 'calibration')).toBe(false);
    expect(DEFAULT_SERVICES.calibration).toBe('cpu');
  });

  it("the shipped compose file defines each backend's service with the registry's image", () => {
    const project = loadCompose(defaultComposeFiles(ROOT, {}), { env: {} });
    for (const b of BACKENDS) expect(project.services[BACKEND_REGISTRY[b].service]?.image, b).toBe(BACKEND_REGISTRY[b].image);
  });

  it('a knob that moved out of extra: is an error naming its new field; other extra keys pass through untouched', () => {
    for (const [knob, to] of Object.entries(MOVED_EXTRA_KNOBS)) {
      const r = ExperimentConfig.safeParse({ ...withModel('pytorch'), extra: { [knob]: 1 } });
      expect(r.success, knob).toBe(false);
      expect(r.error?.issues[0]?.path).toEqual(['extra', knob]);
      expect(r.error?.issues[0]?.message).toContain(to);
    }
    const ok = ExperimentConfig.parse({ ...withModel('vllm'), extra: { swap_space: 4 }, prompts: { source: 'builtin', seed: 3 } });
    expect(ok.extra).toEqual({ swap_space: 4 });
    expect('prompts' in ok && ok.prompts.seed).toBe(3);
  });
});
