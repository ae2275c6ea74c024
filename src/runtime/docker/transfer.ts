/**
 * Run files to and from a remote engine with no shared filesystem: the run's config goes into the
 * service container with the archive API (putArchive), its result/failure files come back with
 * getArchive into the controller's run directory. The container keeps its run directories in a
 * per-campaign named volume on its host (mounted at the same path as the controller's), so a result
 * written by an orphan is still there to fetch on resume.
 *
 * A minimal ustar writer and reader (regular files and directories only), enough for run files.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import type Docker from 'dockerode';
import { statusCode } from './engine.js';

const BLOCK = 512;

interface TarEntry {
  name: string;
  type: 'file' | 'dir';
  data?: Buffer;
  mode: number;
  uid: number;
  gid: number;
}

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, '0') + '\0';
}

function header(e: TarEntry): Buffer {
  const h = Buffer.alloc(BLOCK);
  const name = e.type === 'dir' && !e.name.endsWith('/') ? `${e.name}/` : e.name;
  if (Buffer.byteLength(name) > 100) {
    // ustar prefix (155) + name (100)
    const cut = name.lastIndexOf('/', name.length - 2 - 0);
    const prefix = name.slice(0, cut);
    const rest = name.slice(cut + 1);
    if (Buffer.byteLength(prefix) > 155 || Buffer.byteLength(rest) > 100) throw new Error(`path too long for a tar entry: ${name}`);
    h.write(rest, 0, 'utf8');
    h.write(prefix, 345, 'utf8');
  } else h.write(name, 0, 'utf8');
  h.write(octal(e.mode, 8), 100, 'ascii');
  h.write(octal(e.uid, 8), 108, 'ascii');
  h.write(octal(e.gid, 8), 116, 'ascii');
  h.write(octal(e.data?.length ?? 0, 12), 124, 'ascii');
  h.write(octal(Math.floor(Date.now() / 1000), 12), 136, 'ascii');
  h.write('        ', 148, 'ascii');
  h.write(e.type === 'dir' ? '5' : '0', 156, 'ascii');
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(octal(sum, 7) + ' ', 148, 'ascii');
  return h;
}

export function tarPack(entries: readonly TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    parts.push(header(e));
    if (e.type === 'file' && e.data) {
      parts.push(e.data);
      const pad = (BLOCK - (e.data.length % BLOCK)) % BLOCK;
      if (pad) parts.push(Buffer.alloc(pad));
    }
  }
  parts.push(Buffer.alloc(BLOCK * 2));
  return Buffer.concat(parts);
}

/** Regular files of a tar archive: path → contents. */
export function tarFiles(buf: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let off = 0;
  let longName: string | null = null;
  while (off + BLOCK <= buf.length) {
    const h = buf.subarray(off, off + BLOCK);
    if (h.every((b) => b === 0)) break;
    const str = (a: number, n: number): string => h.subarray(a, a + n).toString('utf8').replace(/\0.*$/s, '');
    const size = parseInt(str(124, 12).trim() || '0', 8);
    const type = str(156, 1);
    const prefix = str(345, 155);
    const name = longName ?? (prefix ? `${prefix}/${str(0, 100)}` : str(0, 100));
    longName = null;
    const data = buf.subarray(off + BLOCK, off + BLOCK + size);
    if (type === 'L') longName = data.toString('utf8').replace(/\0.*$/s, '');
    else if (type === '0' || type === '' || type === '7') out.set(name, Buffer.from(data));
    off += BLOCK + Math.ceil(size / BLOCK) * BLOCK;
  }
  return out;
}

async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(typeof c === 'string' ? Buffer.from(c) : c);
  return Buffer.concat(chunks);
}

/** `uid:gid` → numbers (0:0 when the user is a name or the image's). */
function ids(user: string | undefined): { uid: number; gid: number } {
  const m = /^(\d+):(\d+)$/.exec(user ?? '');
  return m ? { uid: Number(m[1]), gid: Number(m[2]) } : { uid: 0, gid: 0 };
}

/**
 * Puts a run's config.json into the container at its path under the campaign's runs directory
 * (the named volume), creating the run directory owned by the worker's user.
 */
export async function putRunConfig(d: Docker, containerId: string, runsDir: string, configPath: string, user: string | undefined): Promise<void> {
  const { uid, gid } = ids(user);
  const rel = relative(runsDir, dirname(configPath));
  const parts = rel.split('/').filter((p) => p.length > 0);
  const entries: TarEntry[] = parts.map((_, i) => ({ name: parts.slice(0, i + 1).join('/'), type: 'dir', mode: 0o755, uid, gid }));
  entries.push({ name: join(rel, basename(configPath)), type: 'file', data: readFileSync(configPath), mode: 0o644, uid, gid });
  await d.getContainer(containerId).putArchive(tarPack(entries), { path: runsDir });
}

/** The files of a container path (a directory's entries under its own name), or null when the path is not there. */
async function archiveFiles(d: Docker, containerId: string, path: string): Promise<Map<string, Buffer> | null> {
  let stream: NodeJS.ReadableStream;
  try {
    stream = await d.getContainer(containerId).getArchive({ path });
  } catch (err) {
    if (statusCode(err) === 404) return null;
    throw err;
  }
  return tarFiles(await readAll(stream));
}

/**
 * Fetches what the worker wrote in a run directory (result.json, failure.json, …) into the same
 * directory here. Returns the names fetched (none when the directory is not there).
 */
export async function fetchRunDir(d: Docker, containerId: string, outDir: string): Promise<string[]> {
  const files = await archiveFiles(d, containerId, outDir);
  if (files === null) return [];
  const fetched: string[] = [];
  mkdirSync(outDir, { recursive: true });
  for (const [name, data] of files) {
    const rel = name.split('/').slice(1).join('/'); // the archive's top entry is the directory itself
    if (rel === '' || rel.includes('..') || rel.includes('/') || rel === 'config.json') continue;
    writeFileSync(join(outDir, rel), data, { mode: 0o644 });
    fetched.push(rel);
  }
  return fetched;
}

/** Every result.json/failure.json under a campaign's runs directory in a container: run dir → names. */
export async function fetchCampaignResults(d: Docker, containerId: string, runsDir: string, exists: (path: string) => boolean): Promise<string[]> {
  const files = await archiveFiles(d, containerId, runsDir);
  if (files === null) return [];
  const fetched: string[] = [];
  for (const [name, data] of files) {
    const rel = name.split('/').slice(1).join('/');
    if (!/(^|\/)(result|failure)\.json$/.test(rel) || rel.split('/').includes('..')) continue;
    const local = join(runsDir, rel);
    if (exists(local)) continue;
    mkdirSync(dirname(local), { recursive: true });
    writeFileSync(local, data, { mode: 0o644 });
    fetched.push(local);
  }
  return fetched;
}
