/**
 * What the campaign's design means for reading its statistics (results show, report): in a
 * split-plot order the engine configurations are whole plots and everything else is compared
 * inside a loaded engine, so the two kinds of comparison carry different error.
 */
import type { CampaignDesign } from '../manifest/design.js';

export function designNote(d: CampaignDesign | null): string | null {
  if (!d) return null;
  const list = (xs: string[]): string => (xs.length ? xs.join(', ') : 'none varied');
  if (d.kind !== 'split_plot') {
    return `design: ${d.structure} order (${d.kind.replace(/_/g, ' ')}, cycles as blocks); each experiment runs once per cycle, so its interval is over ${d.cycles} cycle(s)`;
  }
  return (
    `design: split-plot — whole plots are the ${d.whole_plot.groups} engine configuration(s) in each of ${d.cycles} cycle(s) (whole-plot factors: ${list(d.whole_plot.factors)}); ` +
    `runs are randomised inside each whole plot (sub-plot factors: ${list(d.sub_plot.factors)}); ${d.engine_loads} engine load(s) planned against ${d.engine_loads_reload_every_run} reloading every run. ` +
    `Each experiment still runs once per cycle, so its interval over cycles holds; differences between whole-plot factors also carry load-to-load variation and rest on ${d.cycles} replicate(s) each, ` +
    `while sub-plot differences are measured within a loaded engine`
  );
}
