/** `lem config import FILE… [-o OUT] [--check]`: other tools' configs as a lem campaign YAML. */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadCampaign } from '../../config/load.js';
import { combine, convertFile, toYaml, unmappedComment } from '../../config/convert/index.js';
import { EXIT_OK, LemError } from '../../util/errors.js';
import type { CliContext } from '../context.js';

export function configImport(ctx: CliContext, files: readonly string[], o: { out?: string; check?: boolean }): number {
  for (const f of files) if (!existsSync(f)) throw new LemError(`${f}: no such file.`);
  const conversion = combine(files.map(convertFile), files);
  const text = toYaml(conversion, files);
  for (const u of conversion.unmapped) ctx.err(`warning:${unmappedComment(u).replace(/^ lem:/, '')}`);
  for (const w of conversion.warnings) ctx.err(`warning: ${w}`);
  let checkPath: string | null = null;
  let tmp: string | null = null;
  if (o.out) {
    checkPath = resolve(o.out);
    writeFileSync(checkPath, text);
    ctx.err(`wrote ${checkPath} (${conversion.kind}; ${conversion.unmapped.length} key(s) could not be mapped)`);
  } else process.stdout.write(text);
  if (!o.check) return EXIT_OK;
  if (!checkPath) {
    tmp = mkdtempSync(join(tmpdir(), 'lem-config-import-'));
    checkPath = join(tmp, 'campaign.yaml');
    writeFileSync(checkPath, text);
  }
  try {
    const c = loadCampaign(checkPath);
    const line = `check: valid lem campaign '${c.name}': ${c.experiments.length} experiment(s) × ${c.settings.cycles} cycle(s) = ${c.experiments.length * c.settings.cycles} run(s).`;
    if (o.out) ctx.out(line);
    else ctx.err(line);
    for (const n of c.notes) ctx.err(`note: ${n}`);
    return EXIT_OK;
  } catch (e) {
    if (e instanceof LemError) throw new LemError(`the converted campaign does not validate: ${e.message}`, e.exitCode);
    throw e;
  } finally {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }
}
