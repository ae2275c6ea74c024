/**
 * `hosts:` and `placement:` of a campaign file: a pool of Docker engines for the docker runtime,
 * each with its GPUs and optional fixed GPU sets, and how runs are placed on them.
 */
import { z } from 'zod';

const HostName = z
  .string()
  .min(1)
  .max(40)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'use letters, digits, dot, dash and underscore only, starting with a letter or digit');

export const EngineTls = z.strictObject({
  ca: z.string().min(1).describe('CA certificate (PEM) the engine is verified against'),
  cert: z.string().min(1).describe('client certificate (PEM)'),
  key: z.string().min(1).describe('client key (PEM)'),
});

export const HostConfig = z
  .strictObject({
    name: HostName.describe('the key in the manifest, locks and reports (engine IDs are not unique)'),
    engine: z
      .string()
      .regex(/^(unix|tcp|ssh):\/\//, 'give unix:///path/docker.sock, tcp://host:2376 (with tls) or ssh://user@host[:port][/remote/docker.sock]')
      .optional()
      .describe('unix://…, tcp://host:2376 with tls: {ca, cert, key}, or ssh://user@host (forwarded through OpenSSH)'),
    context: z.string().min(1).optional().describe('a docker context name instead of engine'),
    tls: EngineTls.optional(),
    ssh_options: z.array(z.string().min(1)).default([]).describe('extra `ssh -o` options (e.g. IdentityFile=…, UserKnownHostsFile=…)'),
    gpus: z
      .union([z.literal('auto'), z.array(z.union([z.number().int().min(0), z.string().min(1)])).min(1)])
      .default('auto')
      .describe('auto = list GPUs (UUID + model) through the engine; or indices / UUIDs'),
    gpu_sets: z.array(z.array(z.number().int().min(0)).min(1)).optional().describe('fixed GPU sets (indices); default: the first free N GPUs'),
  })
  .superRefine((h, ctx) => {
    if ((h.engine === undefined) === (h.context === undefined)) ctx.addIssue({ code: 'custom', path: ['engine'], message: 'give exactly one of engine or context' });
    if (h.tls && !h.engine?.startsWith('tcp://')) ctx.addIssue({ code: 'custom', path: ['tls'], message: 'tls goes with a tcp:// engine' });
  });
export type HostConfig = z.infer<typeof HostConfig>;

export const Placement = z.strictObject({
  group_by: z
    .enum(['gpu_model', 'none'])
    .default('gpu_model')
    .describe('gpu_model: results of different GPU models are never pooled into one aggregate (one per model); none: they are pooled, and the output names the models pooled'),
  on_host_loss: z.enum(['retry_elsewhere']).default('retry_elsewhere').describe('a lost host\'s running runs are placed again on the GPU sets still there'),
});
export type Placement = z.infer<typeof Placement>;

export const Hosts = z
  .array(HostConfig)
  .min(1)
  .superRefine((hosts, ctx) => {
    const seen = new Set<string>();
    hosts.forEach((h, i) => {
      if (seen.has(h.name)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `host name ${h.name} is used twice` });
      seen.add(h.name);
    });
  });
