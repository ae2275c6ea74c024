/** Docker runtime orchestration overhead vs a fresh container per experiment (needs an engine and lem-cpu). */
import { dockerOverhead } from './docker-overhead.js';
import { bookkeepingMedianMs } from './bookkeeping.js';
import type { Figure } from './figure.js';

export async function benchDocker(): Promise<Figure[] | string> {
  try {
    const r = await dockerOverhead({});
    const book = bookkeepingMedianMs();
    const total = r.execMedianMs + book;
    return [
      { name: 'docker: exec dispatch per experiment (median)', value: r.execMedianMs, unit: 'ms' },
      { name: 'orchestrator bookkeeping + result ingest per run (median)', value: book, unit: 'ms' },
      { name: 'docker: orchestration overhead per experiment, total', value: total, unit: 'ms', target: '≤ 100 ms' },
      { name: 'docker: fresh container per experiment (median)', value: r.runRmMedianMs, unit: 'ms' },
      ...(r.cliRunRmMedianMs !== null ? [{ name: 'docker: `docker run --rm` CLI (median)', value: r.cliRunRmMedianMs, unit: 'ms' }] : []),
      { name: 'docker: fresh container / exec dispatch', value: r.runRmMedianMs / r.execMedianMs, unit: '×', target: '≥ 3×' },
      { name: 'docker: service start + health (once per campaign)', value: r.serviceStartMs, unit: 'ms' },
    ];
  } catch (e) {
    return `skipped: ${(e as Error).message.split('\n')[0]} (start dockerd and build lem-cpu: bash .ci/docker-setup.sh)`;
  }
}
