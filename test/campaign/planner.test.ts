import { describe, expect, it } from 'vitest';
import { planRuns } from '../../src/campaign/planner.js';

const ids = ['a', 'b', 'c', 'd', 'e', 'f'];

describe('planner', () => {
  it('gives the same order for the same seed and a different one for another seed', () => {
    const p1 = planRuns({ experimentIds: ids, cycles: 5, structure: 'shuffled', seed: 1 });
    const p2 = planRuns({ experimentIds: ids, cycles: 5, structure: 'shuffled', seed: 1 });
    const p3 = planRuns({ experimentIds: ids, cycles: 5, structure: 'shuffled', seed: 2 });
    expect(p1).toEqual(p2);
    expect(p1.map((r) => r.experimentId)).not.toEqual(p3.map((r) => r.experimentId));
  });

  it('shuffled: every experiment exactly once per cycle, a fresh permutation per cycle', () => {
    const plan = planRuns({ experimentIds: ids, cycles: 8, structure: 'shuffled', seed: 3 });
    const orders = new Set<string>();
    for (let c = 1; c <= 8; c++) {
      const cyc = plan.filter((r) => r.cycle === c).map((r) => r.experimentId);
      expect([...cyc].sort()).toEqual(ids);
      orders.add(cyc.join(','));
    }
    expect(orders.size).toBeGreaterThan(1);
  });

  it('interleaved: declaration order in every cycle', () => {
    const plan = planRuns({ experimentIds: ids, cycles: 3, structure: 'interleaved', seed: 9 });
    expect(plan.map((r) => r.experimentId)).toEqual([...ids, ...ids, ...ids]);
    expect(plan.map((r) => r.cycle)).toEqual(ids.map(() => 1).concat(ids.map(() => 2), ids.map(() => 3)));
  });

  it('grouped: all cycles of one experiment back to back', () => {
    const plan = planRuns({ experimentIds: ['x', 'y'], cycles: 3, structure: 'grouped', seed: 0 });
    expect(plan.map((r) => `${r.experimentId}${r.cycle}`)).toEqual(['x1', 'x2', 'x3', 'y1', 'y2', 'y3']);
  });

  it('numbers positions densely from 0', () => {
    const plan = planRuns({ experimentIds: ids, cycles: 4, structure: 'shuffled', seed: 5 });
    expect(plan.map((r) => r.position)).toEqual(plan.map((_, i) => i));
  });
});
