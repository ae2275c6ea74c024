import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe as suite, expect, it } from 'vitest';
import { aggregate, type RunRecord } from '../../src/results/aggregate.js';
import { describe } from '../../src/results/stats.js';
import { compareExperiments } from '../../src/results/compare.js';
import { renderReport, reportChoices } from '../../src/results/report/html.js';
import { integrateEnergyJ, paretoFront, powerSamplesFromResult, type PowerSample } from '../../src/results/report/plots.js';
import { escapeHtml, niceTicks } from '../../src/results/report/svg.js';
import { overlaps, placeLabels } from '../../src/results/report/labels.js';
import { migrateV1 } from '../../src/contract/result-parse.js';
import type { ResultV1 } from '../../src/contract/result.js';
import { experiment, run } from './helpers.js';

const run$ = promisify(execFile);
const CHROMIUM = '/usr/bin/chromium';
const HAVE_CHROMIUM = existsSync(CHROMIUM);
const IN_CI = Boolean(process.env.CI);
if (!HAVE_CHROMIUM && !IN_CI) {
  console.warn(`report.test: ${CHROMIUM} not found — skipping the headless render (install it with: apt-get install -y chromium). In CI this fails.`);
}
/** Runs in CI even without Chromium, so that a missing browser fails instead of skipping. */
const itBrowser = HAVE_CHROMIUM || IN_CI ? it : it.skip;

const EVIL = '<script>alert("x")</script> & co';

// Designed so the Pareto front (max throughput, min J/token) is exactly E1, E2, E4:
//   E1 (100 tok/s, 2.0 J)  E2 (150, 2.5)  E3 (120, 3.0: dominated by E2)  E4 (80, 1.5)  E5 (90, 2.2: dominated by E1)
// E6 has no throughput metric and is not plotted in (a). 5 cycles each; cycle 3 of E1 is flagged.
const design: [string, string, number | null, number][] = [
  ['E1', 'llama-8b bs=8', 100, 2.0],
  ['E2', 'llama-8b bs=32', 150, 2.5],
  ['E3', 'qwen-7b bs=8', 120, 3.0],
  ['E4', EVIL, 80, 1.5],
  ['E5', 'mistral-7b bs=8', 90, 2.2],
  ['E6', 'no throughput', null, 1.8],
];
const jitter = [1.0, 1.01, 0.99, 1.005, 0.995];
const runs: RunRecord[] = design.flatMap(([id, , tput, jpt], e) =>
  jitter.map((k, c) =>
    run(
      `${id}-c${c + 1}`,
      id,
      c + 1,
      tput === null
        ? { j_per_output_token: jpt * k * (1 + 0.01 * c) }
        : { output_tokens_per_s: tput * (2 - k), j_per_output_token: jpt * k * (1 + 0.01 * c), energy_gpu_j: 1000 * jpt * k, latency_p50_s: 0.5 + e / 10 },
      id === 'E1' && c === 2 ? { flags: ['thermal_throttle'] } : {},
    ),
  ),
);
const experiments = design.map(([id, name], i) =>
  experiment(id, name, id === 'E2' ? 'vllm' : 'pytorch', {
    backend: id === 'E2' ? 'vllm' : 'pytorch',
    model: { id: i < 2 ? 'meta-llama/Llama-3.1-8B-Instruct' : 'Qwen/Qwen2.5-7B-Instruct', revision: 'main' },
    batching: { batch_size: [8, 32, 8, 16, 8, 4][i] },
    precision: 'bf16',
  }),
);
const timeline: PowerSample[] = Array.from({ length: 50 }, (_, i) => ({ t_s: i * 0.1, power_w: 300 + 100 * Math.sin(i / 5) }));
const phases = [
  { name: 'idle_baseline', start_s: 0, end_s: 1 },
  { name: 'warmup', start_s: 1.1, end_s: 1.6 },
  { name: 'steady', start_s: 1.7, end_s: 4.2 },
  { name: 'prefill', start_s: 4.3, end_s: 4.8 },
];
const WINDOW = { gpu_j: 812.5, total_j: 950.25, window_s: 2.5, method: 'nvml_total_energy counter delta', reason: null };

function count(html: string, re: RegExp): number {
  return (html.match(re) ?? []).length;
}

function buildReport(): string {
  const agg = aggregate(runs, experiments, { seed: 'report', resamples: 2000 });
  return renderReport({
    title: `Campaign ${EVIL}`,
    aggregation: agg,
    timeline: { runId: 'E1-c3', samples: timeline, phases, flags: ['thermal_throttle'], window: WINDOW },
    comparison: compareExperiments(runs, 'E1', 'E2', { seed: 1, resamples: 2000 }),
    experiments,
    notes: ['seed report', `host <b>gpu-01</b>`],
  });
}

suite('report pieces', () => {
  it('Pareto front: non-dominated points only', () => {
    const pts = design.filter((d) => d[2] !== null).map(([id, , x, y]) => ({ id, x: x as number, y }));
    expect(paretoFront(pts)).toEqual(['E1', 'E2', 'E4']);
    expect(paretoFront([{ id: 'a', x: 1, y: 1 }, { id: 'b', x: 1, y: 1 }])).toEqual(['a', 'b']); // ties do not dominate
  });
  it('trapezoidal energy of a power timeline', () => {
    // 100 W for 2 s then a ramp to 200 W over 1 s: 200 + 150 = 350 J
    expect(integrateEnergyJ([{ t_s: 0, power_w: 100 }, { t_s: 2, power_w: 100 }, { t_s: 3, power_w: 200 }])).toBe(350);
  });
  it('escapes text', () => {
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
  });
  it('places labels without overlap, inside the plot, nearest first', () => {
    const bounds = { x: 0, y: 0, w: 400, h: 300 };
    const reqs = Array.from({ length: 12 }, (_, i) => ({ id: `e${i}`, text: `a-rather-long-experiment-name-${i}`, x: 200 + (i % 3), y: 150 + (i % 4), r: 5 }));
    const placed = placeLabels(reqs, bounds, []);
    expect(placed.length).toBeGreaterThan(3);
    for (const [i, a] of placed.entries()) {
      expect(a.box.x).toBeGreaterThanOrEqual(0);
      expect(a.box.x + a.box.w).toBeLessThanOrEqual(400);
      for (const b of placed.slice(i + 1)) expect(overlaps(a.box, b.box), `${a.id} / ${b.id}`).toBe(false);
    }
    // A lone point gets its label right beside it, without a leader line.
    const [one] = placeLabels([{ id: 'x', text: 'x', x: 100, y: 100, r: 5 }], bounds, []);
    expect(one?.leader).toBeNull();
    expect(one?.anchor).toBe('start');
    // Near the right edge the label flips to the left instead of clipping.
    const [edge] = placeLabels([{ id: 'y', text: 'long label at the edge', x: 395, y: 100, r: 5 }], bounds, []);
    expect(edge?.anchor).toBe('end');
  });
  it('ticks are round numbers inside the range', () => {
    expect(niceTicks(0, 10, 5)).toEqual([0, 2, 4, 6, 8, 10]);
    expect(niceTicks(0.13, 0.58, 5)).toEqual([0.2, 0.3, 0.4, 0.5]);
  });
  it('picks lem metrics by default', () => {
    const agg = aggregate(runs, experiments, { resamples: 100 });
    expect(reportChoices({ aggregation: agg })).toEqual({
      energyMetric: 'j_per_output_token',
      throughputMetric: 'output_tokens_per_s',
      stripMetric: 'j_per_output_token',
      summaryMetrics: ['j_per_output_token', 'output_tokens_per_s', 'energy_gpu_j', 'latency_p50_s'],
    });
  });
  it('reads the power timeline from a v3 result; v1 results have none', () => {
    const v1: ResultV1 = {
      schema_version: 1,
      run_id: 'r',
      experiment_id: 'e',
      cycle: 1,
      attempt: 1,
      backend: 'pytorch',
      started_at: 't0',
      ended_at: 't1',
      metrics: {},
      unmeasured: {},
      energy: {
        gpu: { joules: 1, source: 'nvml', reason: null },
        cpu: { joules: null, source: null, reason: 'n/a' },
        dram: { joules: null, source: null, reason: 'n/a' },
      },
      environment: {},
      notes: [],
    };
    expect(powerSamplesFromResult(v1)).toBeNull();
    const gpuLine = (offset: number) => ({
      uuid: `GPU-${offset}`,
      logical_index: offset,
      t_s: [0, 0.1, 0.2],
      power_instant_w: [100 + offset, null, 120 + offset],
      power_avg_w: [99, 110 + offset, 119],
      temp_c: [40, 40, 41],
      sm_clock_mhz: [1980, 1980, 1980],
      mem_used_mib: [1000, 1000, 1000],
      clock_reasons: [0, 0, 0],
      bucket_size: 1,
    });
    const v3 = { ...migrateV1(v1), timeline: { interval_ms: 100, update_period_ms: 100, power_source: 'nvml', gpus: [gpuLine(0), gpuLine(1)], phases: [] } };
    expect(powerSamplesFromResult(v3, 0)).toEqual([
      { t_s: 0, power_w: 100 },
      { t_s: 0.1, power_w: 110 },
      { t_s: 0.2, power_w: 120 },
    ]);
    expect(powerSamplesFromResult(v3)).toEqual([
      { t_s: 0, power_w: 201 },
      { t_s: 0.1, power_w: 221 },
      { t_s: 0.2, power_w: 241 },
    ]);
  });
});

suite('HTML report (string)', () => {
  const html = buildReport();
  it('is self-contained: no scripts, no external references', () => {
    expect(html.startsWith('<!DOCTYPE html>')).toBe(true);
    expect(html).not.toMatch(/<script/i);
    expect(html).not.toMatch(/https?:\/\//);
    expect(html).not.toMatch(/\b(src|href)=/i);
    expect(html).not.toMatch(/@import|url\(/);
  });
  it('escapes all user text', () => {
    expect(html).toContain('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co');
    expect(html).toContain('host &lt;b&gt;gpu-01&lt;/b&gt;');
    expect(html).not.toContain('<b>gpu-01</b>');
  });
  it('has the expected marks', () => {
    expect(count(html, /<circle class="point[ "]/g)).toBe(5);
    expect(count(html, /<circle class="point pareto"/g)).toBe(3);
    expect(count(html, /class="ci-whisker/g)).toBe(10);
    expect(count(html, /<polyline class="pareto-front"/g)).toBe(1);
    expect(count(html, /<circle class="strip-point/g)).toBe(30);
    expect(count(html, /<circle class="strip-point flagged"/g)).toBe(1);
    // Every run as a dot in the scatter (5 plotted experiments × 5 cycles), the flagged one hollow.
    expect(count(html, /<circle class="run-point/g)).toBe(25);
    expect(count(html, /<circle class="run-point flagged"[^>]*fill="#fff"/g)).toBe(1);
  });
  it('draws the worker phases as bands and names the measured window in the caption with its energy', () => {
    expect([...html.matchAll(/<rect class="phase-band" data-phase="([a-z_]+)"/g)].map((m) => m[1])).toEqual(['idle_baseline', 'warmup', 'steady', 'prefill']);
    for (const name of ['idle baseline', 'warm-up', 'measured window', 'prefill pass']) expect(html).toContain(name);
    // The caption's energy is the result's window energy, not the trace's integral (~1 900 J here).
    expect(html).toContain('measured window: 812.5 J GPU energy over 2.5 s');
    expect(html).not.toMatch(/J \(trapezoidal\)/);
    // The run is flagged: hollow sample markers and a note.
    expect(count(html, /<circle class="sample-point flagged"/g)).toBe(timeline.length);
    expect(html).toContain('This run is flagged (thermal_throttle)');
  });
  it('says which interval it shows, and the few-cycles note only below 5 cycles', () => {
    expect(html).toContain('95 % Student t CI of the mean');
    expect(html).not.toContain('Note: few cycles'); // 5 cycles each
    const three = aggregate(
      runs.filter((r) => r.cycle <= 3),
      experiments,
      { seed: 'report' },
    );
    expect(renderReport({ aggregation: three })).toContain('Note: few cycles (n = 3)');
  });
  it('notes an interval that reaches below 0 over all-positive values, and only then', () => {
    expect(html).not.toContain('reaches below 0');
    const three = aggregate(
      runs.filter((r) => r.cycle <= 3),
      experiments,
      { seed: 'report' },
    );
    // Every metric of the first experiment given a spread too wide for n = 3 (CV ~ 90 %).
    const first = three.experiments[0];
    if (!first) throw new Error('no experiment');
    for (const m of Object.values(first.metrics)) if (m.description) m.description = describe([1e9, 5e9, 1e10], { seed: 1 });
    expect(renderReport({ aggregation: three })).toMatch(/Note: the interval of \S+.* reaches below 0 although every value is positive/);
  });
  it('puts the varied parameters in the summary table, not the ones all experiments share', () => {
    const head = /<table class="summary"><thead>(.*?)<\/thead>/s.exec(html)?.[1] ?? '';
    const cols = [...head.matchAll(/<th[^>]*>(.*?)<\/th>/g)].map((m) => (m[1] as string).replace(/<wbr>/g, '').replace(/<br>.*$/, ''));
    expect(cols.slice(0, 4)).toEqual(['experiment', 'backend', 'model.id', 'batching.batch_size']);
    expect(cols).not.toContain('precision');
    expect(cols).not.toContain('model.revision');
  });
  it('says when there is no timeline or metric', () => {
    const agg = aggregate([run('a', 'A', 1, { ops_per_s: 5 })], [], { resamples: 100 });
    const h = renderReport({ aggregation: agg });
    expect(h).toContain('No power timeline available');
    expect(h).toContain('no energy or throughput metric');
    expect(count(h, /<circle class="point/g)).toBe(0);
  });
});

/** Twelve experiments with long names, bunched together: the label placer's hard case. */
function crowdedReport(): string {
  const ids = Array.from({ length: 12 }, (_, i) => `C${i}`);
  const crowdRuns = ids.flatMap((id, i) =>
    [1, 2, 3].map((c) =>
      run(`${id}-c${c}`, id, c, { output_tokens_per_s: 100 + (i % 4) * 0.8 + c * 0.1, j_per_output_token: 2 + Math.floor(i / 4) * 0.02 + c * 0.001 }, c === 2 && i % 5 === 0 ? { flags: ['warmup_not_converged'] } : {}),
    ),
  );
  const crowdExps = ids.map((id, i) =>
    experiment(id, `meta-llama/Llama-3.1-8B-Instruct tp=${1 + (i % 2)} batch=${8 * (i + 1)} ${'very-long-suffix-'.repeat(i % 3)}`, 'vllm', {
      vllm: { tensor_parallel_size: 1 + (i % 2), max_num_seqs: 8 * (i + 1), gpu_memory_utilization: 0.9 - i / 100 },
      model: { id: 'meta-llama/Llama-3.1-8B-Instruct-with-a-very-long-repository-name' },
    }),
  );
  return renderReport({ title: 'crowded', aggregation: aggregate(crowdRuns, crowdExps, { seed: 1 }), experiments: crowdExps, timeline: { runId: 'x', samples: timeline, phases } });
}

/** Counts of what the in-browser check found (see CHECK_SCRIPT). */
interface LayoutCheck {
  labels: number;
  problems: string[];
  scrollWidth: number;
  tableRight: number;
}

// Runs in Chromium on a copy of the report (the report itself has no script and forbids them).
const CHECK_SCRIPT = `<script>
(() => {
  const problems = [];
  let labels = 0;
  for (const svg of document.querySelectorAll('svg.plot')) {
    const s = svg.getBoundingClientRect();
    const boxes = [...svg.querySelectorAll('text')].filter((t) => t.textContent.trim() !== '').map((t) => ({ t: t.textContent, c: t.getAttribute('class'), r: t.getBoundingClientRect() }));
    labels += boxes.filter((b) => b.c === 'point-label' || b.c === 'phase-label').length;
    for (const b of boxes) {
      if (b.r.left < s.left - 0.5 || b.r.right > s.right + 0.5 || b.r.top < s.top - 0.5 || b.r.bottom > s.bottom + 0.5) problems.push('clipped: ' + b.t);
    }
    for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
      const a = boxes[i].r, b = boxes[j].r;
      if (a.left < b.right - 0.5 && b.left < a.right - 0.5 && a.top < b.bottom - 0.5 && b.top < a.bottom - 0.5) problems.push('overlap: ' + boxes[i].t + ' / ' + boxes[j].t);
    }
  }
  const table = document.querySelector('table.summary');
  const out = { labels, problems, scrollWidth: document.documentElement.scrollWidth, tableRight: table ? table.getBoundingClientRect().right : 0 };
  const pre = document.createElement('pre');
  pre.id = 'layout-check';
  pre.textContent = encodeURIComponent(JSON.stringify(out));
  document.body.appendChild(pre);
})();
</script>`;

async function layoutCheck(dir: string, name: string, html: string, flags: readonly string[]): Promise<LayoutCheck> {
  const file = join(dir, `${name}-check.html`);
  await writeFile(file, html.replace(/<meta http-equiv="Content-Security-Policy"[^>]*>/, '').replace('</body>', `${CHECK_SCRIPT}</body>`), 'utf8');
  const { stdout } = await run$(CHROMIUM, [...flags, `--user-data-dir=${join(dir, `profile-${name}`)}`, '--window-size=1280,3000', '--dump-dom', `file://${file}`], {
    timeout: 90_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  const raw = /<pre id="layout-check">([^<]*)<\/pre>/.exec(stdout)?.[1];
  if (!raw) throw new Error(`the layout check did not run in Chromium for ${name}`);
  return JSON.parse(decodeURIComponent(raw)) as LayoutCheck;
}

suite('HTML report rendered in headless Chromium', () => {
  itBrowser(
    'renders the plots with the expected number of marks',
    async () => {
      if (!HAVE_CHROMIUM) throw new Error(`${CHROMIUM} is missing: CI must install Debian's chromium package (apt-get install -y chromium)`);
      const dir = await mkdtemp(join(tmpdir(), 'lem-report-'));
      try {
        const file = join(dir, 'report.html');
        await writeFile(file, buildReport(), 'utf8');
        const flags = [
          '--headless',
          '--no-sandbox',
          '--disable-gpu',
          '--disable-quic',
          '--no-first-run',
          '--disable-background-networking',
          '--disable-component-update',
          '--disable-sync',
          '--hide-scrollbars',
        ];
        const { stdout: dom } = await run$(CHROMIUM, [...flags, `--user-data-dir=${join(dir, 'profile-dom')}`, '--dump-dom', `file://${file}`], {
          timeout: 90_000,
          maxBuffer: 64 * 1024 * 1024,
        });
        // The DOM as parsed and serialised by the browser.
        expect(dom).toContain('<svg class="plot energy-throughput"');
        expect(count(dom, /<svg class="plot /g)).toBe(3);
        expect(count(dom, /<circle class="point[ "]/g)).toBe(5);
        expect(count(dom, /<circle class="point pareto"/g)).toBe(3);
        expect(count(dom, /<line class="ci-whisker ci-[xy]"/g)).toBe(10);
        expect(count(dom, /<circle class="strip-point/g)).toBe(30);
        const line = /<polyline class="power-line" points="([^"]*)"/.exec(dom);
        expect(line?.[1]?.trim().split(/\s+/)).toHaveLength(timeline.length);
        expect(count(dom, /<table class="summary">/g)).toBe(1);
        expect(count(dom, /<tbody>(?:(?!<\/tbody>).)*<\/tbody>/gs)).toBe(2);
        // Escaped text stayed text: no script element was created.
        expect(dom).not.toMatch(/<script/i);
        expect(dom).toContain('&lt;script&gt;alert("x")&lt;/script&gt; &amp; co');

        // In the browser, at 1280 px: no two texts of a plot overlap, none is clipped by its SVG, and
        // the page (summary table included) is no wider than the window. Also for a crowded plot.
        for (const [name, page] of [['report', buildReport()], ['crowded', crowdedReport()]] as const) {
          const check = await layoutCheck(dir, name, page, flags);
          expect(check.labels, name).toBeGreaterThan(0);
          expect(check.problems, name).toEqual([]);
          expect(check.scrollWidth, name).toBeLessThanOrEqual(1280);
          expect(check.tableRight, name).toBeLessThanOrEqual(1280);
        }
        // The check itself sees overprinting and clipping: the same report with every label moved onto one spot at the edge.
        const broken = buildReport().replace(/(<text class="point-label"[^>]*?) x="[^"]*" y="[^"]*"/g, '$1 x="100000" y="100"');
        const bad = await layoutCheck(dir, 'broken', broken, flags);
        expect(bad.problems.some((p) => p.startsWith('overlap: '))).toBe(true);
        expect(bad.problems.some((p) => p.startsWith('clipped: '))).toBe(true);

        const png = join(dir, 'report.png');
        await run$(CHROMIUM, [...flags, `--user-data-dir=${join(dir, 'profile-png')}`, '--window-size=1280,2600', `--screenshot=${png}`, `file://${file}`], {
          timeout: 90_000,
        });
        const st = await stat(png);
        expect(st.size).toBeGreaterThan(20_000);
        const head = (await readFile(png)).subarray(0, 8);
        expect([...head]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
        const keep = process.env.LEM_KEEP_REPORT;
        if (keep) {
          await copyFile(png, `${keep}.png`);
          await copyFile(file, `${keep}.html`);
        }
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
    180_000,
  );
});

suite('Pareto staircase geometry', () => {
  it('rises to the next front point, then runs across to it', () => {
    const html = buildReport();
    const pts = /<polyline class="pareto-front" points="([^"]*)"/.exec(html)?.[1]?.split(' ').map((p) => p.split(',').map(Number)) ?? [];
    // 3 front points → 3 vertices + 2 corners
    expect(pts).toHaveLength(5);
    const [p0, c1, p1, c2, p2] = pts as [number[], number[], number[], number[], number[]];
    expect(c1[0]).toBe(p0[0]); // corner above the previous point (same x) ...
    expect(c1[1]).toBe(p1[1]); // ... at the next point's energy (same y)
    expect(c2[0]).toBe(p1[0]);
    expect(c2[1]).toBe(p2[1]);
    expect(p0[0] as number).toBeLessThan(p1[0] as number);
    expect(p1[1] as number).toBeLessThan(p0[1] as number); // SVG y grows downwards: higher energy is smaller y
  });
});
