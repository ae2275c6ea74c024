/** The campaign file: which experiments to run, how many cycles, in what order, on which runtime. */
import { z } from 'zod';
import { gridIntensityTable, knownRegions } from './grid-intensity.js';

export const Structure = z.enum(['interleaved', 'shuffled', 'grouped']);
export type Structure = z.infer<typeof Structure>;
export const RuntimeName = z.enum(['local', 'docker']);
export type RuntimeName = z.infer<typeof RuntimeName>;

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
      .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'use letters, digits, dot, dash and underscore only'),
    configs: z.array(ConfigRef).min(1).optional().describe('experiment config files (paths relative to this file) or inline configs'),
    base_config: ConfigRef.optional().describe('a config file or inline config the grid starts from'),
    vary: z
      .record(z.string().min(1), z.array(z.unknown()).min(1))
      .optional()
      .describe('dotted field path → values; expanded as a backend-aware cartesian product'),
    cycles: z.number().int().min(1).max(10_000).default(3),
    structure: Structure.default('shuffled'),
    seed: z.number().int().min(0).default(42),
    thermal_gap: z.number().min(0).default(60).describe('seconds to wait between runs'),
    runtime: RuntimeName.default('local'),
    force_cold_start: z.boolean().default(false),
    retries: z.number().int().min(0).max(10).default(1),
    keep_services: z.boolean().default(false),
    carbon: Carbon.optional().describe('grid carbon intensity for emissions: {intensity_g_per_kwh: N} or {region: CODE}'),
  })
  .superRefine((c, ctx) => {
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

/** The campaign settings stored in the manifest (what resume needs; the file may have changed). */
export const CampaignSettings = z.object({
  cycles: z.number().int().min(1),
  structure: Structure,
  seed: z.number().int().min(0),
  thermal_gap: z.number().min(0),
  runtime: RuntimeName,
  force_cold_start: z.boolean(),
  retries: z.number().int().min(0),
  keep_services: z.boolean(),
  carbon: Carbon.optional(),
});
export type CampaignSettings = z.infer<typeof CampaignSettings>;
