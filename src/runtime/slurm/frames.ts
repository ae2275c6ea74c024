/**
 * The framed files a worker writes on stdout under `run - --result-stdout`
 * (images/worker/lem_worker/framing.py):
 *
 *     @@lem-frame/1 NAME BYTES SHA256\n<BYTES bytes>\n@@lem-frame-end NAME\n
 *
 * A frame whose length, digest or end line does not match is not trusted (a step cut short).
 */
import { createHash } from 'node:crypto';

/** The files the orchestrator accepts from a step (anything else is reported, not written). */
export const FRAMED_FILES = ['result.json', 'failure.json', 'placement.json'] as const;

export interface ParsedFrames {
  files: Map<string, Buffer>;
  /** Bytes outside any frame (a worker that printed to stdout); they belong in the log. */
  stray: Buffer;
  /** Frames that were cut short or did not verify, and names not accepted. */
  problems: string[];
}

const HEADER = /^@@lem-frame\/1 ([A-Za-z0-9._-]+) (\d+) ([0-9a-f]{64})$/;

export function parseFrames(buf: Buffer): ParsedFrames {
  const files = new Map<string, Buffer>();
  const stray: Buffer[] = [];
  const problems: string[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const nl = buf.indexOf(0x0a, pos);
    const lineEnd = nl < 0 ? buf.length : nl;
    const m = HEADER.exec(buf.subarray(pos, lineEnd).toString('utf8'));
    if (!m) {
      stray.push(buf.subarray(pos, Math.min(lineEnd + 1, buf.length)));
      pos = lineEnd + 1;
      continue;
    }
    const [, name, len, digest] = m as unknown as [string, string, string, string];
    const start = lineEnd + 1;
    const end = start + Number(len);
    const trailer = Buffer.from(`\n@@lem-frame-end ${name}\n`);
    if (end + trailer.length > buf.length || !buf.subarray(end, end + trailer.length).equals(trailer)) {
      problems.push(`${name}: frame cut short (${buf.length - start} of ${len} bytes and its end line)`);
      stray.push(buf.subarray(pos));
      break;
    }
    const body = buf.subarray(start, end);
    if (createHash('sha256').update(body).digest('hex') !== digest) problems.push(`${name}: SHA-256 does not match its frame header`);
    else if (!(FRAMED_FILES as readonly string[]).includes(name)) problems.push(`${name}: not a file the orchestrator accepts from a step`);
    else files.set(name, Buffer.from(body));
    pos = end + trailer.length;
  }
  return { files, stray: Buffer.concat(stray), problems };
}
