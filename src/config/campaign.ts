/** The campaign file: which experiments to run, how many cycles, in what order, on which runtime. */
import { Cron } from 'croner';
import { z } from 'zod';
import { Hosts, Placement } from './hosts.js';
import { gridIntensityTable, knownRegions } from './grid-intensity.js';
import { SlurmSettings } from './slurm.js';

export const Structure = z.enum(['interleaved', 'shuffled', 'grouped', 'split_plot']);
export type Structure = z.infer<typeof Structure>;
export const RuntimeName = z.enum(['local', 'docker', 'slurm']);
export type RuntimeName = z.infer<typeof RuntimeName>;

/** The longest campaign name: its id (name + 21 characters) names a directory, which paths cap at 255 bytes. */
export const MAX_CAMPAIGN_NAME = 100;
/** Default ceiling on experiments × cycles (overridable with `max_runs:` or `--max-runs`). */
export const DEFAULT_MAX_RUNS = 100_000;
/**
 * Temperature-aware thermal gap (mapping form): wait at least min_s, at most max_s, until the next
 * run's GPU(s) are within within_c_of_idle of the calibrated idle temperature (or at or below
 * until_temp_c), and optionally within power_within_w_of_idle of idle power.
 */
export const ThermalGapSpec = z
  .strictObject({
    min_s: z.number().min(0).default(0).describe('never wait less than this (also the fixed wait on a host without a GPU sensor)'),
    max_s: z.number().min(0).default(600).describe('never wait more than this'),
    within_c_of_idle: z.number().positive().optional().describe('wait until the temperature is within this many °C of the calibrated idle temperature'),
    until_temp_c: z.number().optional().describe('wait until the temperature is at or below this (°C)'),
    power_within_w_of_idle: z.number().positive().optional().describe('also wait until power is within this many W of the calibrated idle power'),
  })
  .superRefine((g, ctx) => {
    if ((g.within_c_of_idle === undefined) === (g.until_temp_c === undefined)) {
      ctx.addIssue({ code: 'custom', path: [], message: 'give exactly one of within_c_of_idle (°C above the calibrated idle) or until_temp_c (an absolute temperature)' });
    }
    if (g.max_s < g.min_s) ctx.addIssue({ code: 'custom', path: ['max_s'], message: `max_s (${g.max_s}) is below min_s (${g.min_s})` });
  });
export type ThermalGapSpec = z.infer<typeof ThermalGapSpec>;
export const ThermalGap = z.union([z.number().min(0), ThermalGapSpec]);
export type ThermalGap = z.infer<typeof ThermalGap>;

/** When a daemon fires the campaign's next cycle(s): cron (5 or 6 fields, parsed by croner) or daily times. */
export const Schedule = z
  .strictObject({
    cron: z.string().min(1).optional().describe('cron expression: five fields, or six with seconds first'),
    at: z
      .array(z.string().regex(/^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?$/, 'use HH:MM or HH:MM:SS (24-hour)'))
      .min(1)
      .optional()
      .describe('daily times, e.g. ["02:00", "14:00"]'),
    timezone: z.string().min(1).optional().describe("IANA time zone of the schedule (default: the host's)"),
    max_fires: z.number().int().min(1).optional().describe('end the campaign after this many fires'),
    until: z.iso.datetime({ offset: true }).optional().describe('no fire after this date-time (ISO 8601 with offset)'),
    cycles_per_fire: z.number().int().min(1).default(1),
    missed: z.enum(['skip', 'run_late']).default('skip').describe('a slot missed while the daemon was down: skipped, or run late'),
  })
  .superRefine((s, ctx) => {
    if ((s.cron === undefined) === (s.at === undefined)) ctx.addIssue({ code: 'custom', path: [], message: 'give exactly one of cron or at' });
    if (s.timezone !== undefined) {
      try {
        new Intl.DateTimeFormat('en-US', { timeZone: s.timezone });
      } catch {
        ctx.addIssue({ code: 'custom', path: ['timezone'], message: `unknown time zone '${s.timezone}' (use an IANA name such as Europe/Berlin or UTC)` });
        return;
      }
    }
    if (s.cron !== undefined) {
      try {
        new Cron(s.cron, { paused: true, ...(s.timezone ? { timezone: s.timezone } : {}) });
      } catch (e) {
        ctx.addIssue({ code: 'custom', path: ['cron'], message: `not a cron expression croner accepts: ${(e as Error).message}` });
      }
    }
  });
export type Schedule = z.infer<typeof Schedule>;

/** Idle reference values from `lem calibrate`, copied into the campaign when it is planned. */
export const IdleReference = z.object({
  idle_temp_c: z.number().nullable(),
  idle_power_w: z.number().nullable(),
  file: z.string(),
});
export type IdleReference = z.infer<typeof IdleReference>;

const ConfigRef = z.union([z.string().min(1), z.record(z.string(), z.unknown())]);

/**
 * Carbon accounting (applied late, in the results layer; raw results never carry it): a grid
 * intensity in gCO2eq/kWh, or a region code of the shipped table (data/grid-intensity.json).
 */
export const Carbon = z
  .strictObject({
    intensity_g_per_kwh: z.number().positive().max(5000).optional().describe('grid carbon intensity, gCO2eq/kWh'),
    region: z
      .string()
      .regex(/^[A-Z]{3}$/, 'an ISO 3166-1 alpha-3 country code in capitals, e.g. FRA')
      .refine((r) => r in gridIntensityTable().regions, { error: (i) => `no grid intensity for region '${String(i.input)}' in the shipped table; known: ${knownRegions().join(', ')} (or give carbon.intensity_g_per_kwh)` })
      .optional()
      .describe('a region of the shipped grid-intensity table (ISO 3166-1 alpha-3)'),
  })
  .superRefine((c, ctx) => {
    if ((c.intensity_g_per_kwh === undefined) === (c.region === undefined)) {
      ctx.addIssue({ code: 'custom', path: [], message: 'give exactly one of intensity_g_per_kwh (gCO2eq/kWh) or region (an ISO 3166-1 alpha-3 code of the shipped table, e.g. FRA)' });
    }
  });
export type Carbon = z.infer<typeof Carbon>;

export const CampaignFile = z
  .strictObject({
    campaign_name: z
      .string()
      .min(1)
      .max(MAX_CAMPAIGN_NAME)
      .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'use letters, digits, dot, dash and underscore only, starting with a letter or digit'),
    configs: z.array(ConfigRef).min(1).optional().describe('experiment config files (paths relative to this file) or inline configs'),
    base_config: ConfigRef.optional().describe('a config file or inline config the grid starts from'),
    vary: z
      .record(z.string().min(1, 'a key under vary is empty; each key is a dotted field path such as batching.batch_size'), z.array(z.unknown()).min(1))
      .optional()
      .describe('dotted field path → values; expanded as a backend-aware cartesian product'),
    cycles: z.number().int().min(1).max(10_000).default(3),
    structure: Structure.optional().describe(
      'run order per cycle: split_plot (engine-configuration groups in a seeded random order, runs inside each group in a seeded random order: each engine loads once per cycle; the default unless force_cold_start), shuffled (one seeded permutation per cycle; the default with force_cold_start), interleaved (declaration order) or grouped (all cycles of one experiment back to back)',
    ),
    seed: z.number().int().min(0).default(42),
    thermal_gap: ThermalGap.default(60).describe('seconds to wait between runs, or {min_s, max_s, within_c_of_idle | until_temp_c, power_within_w_of_idle}'),
    runtime: RuntimeName.default('local'),
    force_cold_start: z.boolean().default(false),
    retries: z.number().int().min(0).max(10).default(1),
    keep_services: z.boolean().default(false),
    max_runs: z.number().int().min(1).optional().describe(`refuse to plan more runs (experiments × cycles) than this; default ${DEFAULT_MAX_RUNS}`),
    schedule: Schedule.optional().describe('run the cycles at set times with `lem daemon run`'),
    calibration_file: z.string().min(1).optional().describe('a `lem calibrate` output (path relative to this file): idle temperature and power for thermal gaps'),
    carbon: Carbon.optional().describe('grid carbon intensity for emissions: {intensity_g_per_kwh: N} or {region: CODE}'),
    hosts: Hosts.optional().describe('docker runtime: a pool of Docker engines (absent: the one engine the docker CLI would use)'),
    placement: Placement.optional().describe('how runs are placed on hosts: {group_by: gpu_model, on_host_loss: retry_elsewhere}'),
    slurm: SlurmSettings.optional().describe('runtime: slurm — login, partition, account, allocation, container, results'),
  })
  .superRefine((c, ctx) => {
    if (c.hosts && c.runtime !== 'docker') ctx.addIssue({ code: 'custom', path: ['hosts'], message: 'hosts needs runtime: docker' });
    if (c.configs && c.base_config) {
      ctx.addIssue({ code: 'custom', path: ['base_config'], message: 'give either configs (a list) or base_config with vary (a grid), not both' });
    }
    if (!c.configs && !c.base_config) {
      ctx.addIssue({ code: 'custom', path: [], message: 'a campaign needs experiments: add configs (a list of config files) or base_config and vary (a grid)' });
    }
    if (c.vary && !c.base_config) {
      ctx.addIssue({ code: 'custom', path: ['vary'], message: 'vary needs a base_config to start from' });
    }
  });
export type CampaignFile = z.infer<typeof CampaignFile>;

/**
 * The order a campaign gets when its file names none: split-plot where engines can be reused
 * across runs (a warm engine serves every run of its group in a cycle), the flat shuffle when every
 * run starts cold anyway (force_cold_start), where grouping would buy nothing.
 */
export function defaultStructure(forceColdStart: boolean): Structure {
  return forceColdStart ? 'shuffled' : 'split_plot';
}

/** The campaign settings stored in the manifest (what resume needs; the file may have changed). */
export const CampaignSettings = z.object({
  cycles: z.number().int().min(1),
  structure: Structure,
  seed: z.number().int().min(0),
  thermal_gap: ThermalGap,
  runtime: RuntimeName,
  force_cold_start: z.boolean(),
  retries: z.number().int().min(0),
  keep_services: z.boolean(),
  schedule: Schedule.optional(),
  /** Idle reference read from calibration_file when the campaign was planned. */
  idle: IdleReference.optional(),
  carbon: Carbon.optional(),
  hosts: Hosts.optional(),
  placement: Placement.optional(),
  slurm: SlurmSettings.optional(),
});
export type CampaignSettings = z.infer<typeof CampaignSettings>;
