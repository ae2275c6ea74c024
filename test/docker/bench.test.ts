/** The overhead benchmark runs end to end (tiny iteration count) and returns sane figures. */
import { beforeAll, describe, expect, it } from 'vitest';
import { dockerOverhead } from '../../bench/docker-overhead.js';
import { containersWithLabel, engine, requireEngine, runDockerTests, TEST_IMAGE } from './engine.js';

describe.skipIf(!runDockerTests)('bench/docker-overhead (real engine)', () => {
  beforeAll(requireEngine);

  it('measures exec dispatch against a fresh container per experiment and cleans up', async () => {
    const r = await dockerOverhead({ iterations: 3, image: TEST_IMAGE, engine, cli: false });
    expect(r.execSamplesMs).toHaveLength(3);
    expect(r.runRmSamplesMs).toHaveLength(3);
    expect(r.execMedianMs).toBeGreaterThan(0);
    expect(r.runRmMedianMs).toBeGreaterThan(0);
    expect(r.cliRunRmMedianMs).toBeNull();
    expect((await containersWithLabel('lem.project=lembench')).length).toBe(0);
  });
});
