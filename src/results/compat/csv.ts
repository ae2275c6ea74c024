/** Generic CSV parsing (RFC 4180) and numeric cells, for the importers. */
import { parse as parseSync } from 'csv-parse/sync';

/** Parses CSV text into rows of fields. Handles quotes, doubled quotes, CRLF/LF and a UTF-8 BOM. */
export function parseCsv(text: string): string[][] {
  const s = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let inQuotes = false;
  let i = 0;
  const endField = (): void => {
    row.push(field);
    field = '';
  };
  const endRow = (): void => {
    endField();
    rows.push(row);
    row = [];
  };
  while (i < s.length) {
    const c = s[i] as string;
    if (inQuotes) {
      if (c === '"') {
        if (s[i + 1] === '"') {
          field += '"';
          i += 2;
          continue;
        }
        inQuotes = false;
        i++;
        continue;
      }
      field += c;
      i++;
      continue;
    }
    if (c === '"' && field === '') {
      inQuotes = true;
      i++;
    } else if (c === ',') {
      endField();
      i++;
    } else if (c === '\r' && s[i + 1] === '\n') {
      endRow();
      i += 2;
    } else if (c === '\n' || c === '\r') {
      endRow();
      i++;
    } else {
      field += c;
      i++;
    }
  }
  if (field !== '' || row.length > 0) endRow();
  return rows;
}

/** A CSV/JSON cell as a finite number, or null ('' / NaN / text). */
export function parseNumber(v: unknown): number | null {
  if (typeof v === 'number') return Number.isFinite(v) ? v : null;
  if (typeof v !== 'string') return null;
  const t = v.trim();
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(t)) return null;
  const n = Number(t);
  return Number.isFinite(n) ? n : null;
}

/** The field delimiter of a CSV: ';' when the header line has more unquoted ';' than ',' (European locales). */
export function detectDelimiter(text: string): ',' | ';' {
  const s = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  let commas = 0;
  let semis = 0;
  let quoted = false;
  for (const c of s) {
    if (c === '"') quoted = !quoted;
    else if (!quoted && (c === '\n' || c === '\r')) break;
    else if (!quoted && c === ',') commas++;
    else if (!quoted && c === ';') semis++;
  }
  return semis > commas ? ';' : ',';
}

/** A CSV that cannot be parsed: `line` is the 1-based line csv-parse stopped at. */
export class CsvSyntaxError extends Error {
  constructor(
    readonly line: number | null,
    readonly detail: string,
  ) {
    super(`${line !== null ? `line ${line}: ` : ''}${detail}`);
    this.name = 'CsvSyntaxError';
  }
}

/**
 * Parses CSV text with csv-parse (RFC 4180: a stray or unclosed quote is an error with its line, never
 * a silently merged row). The delimiter is detected (',' or ';'); rows may have differing lengths
 * (the importer reports them).
 */
export function parseCsvStrict(text: string): { rows: string[][]; delimiter: ',' | ';' } {
  const delimiter = detectDelimiter(text);
  try {
    const rows = parseSync(text, { delimiter, bom: true, skip_empty_lines: true, relax_column_count: true }) as string[][];
    return { rows, delimiter };
  } catch (e) {
    const err = e as Error & { lines?: number; code?: string };
    throw new CsvSyntaxError(typeof err.lines === 'number' ? err.lines : null, err.message.replace(/ at line \d+/, ''));
  }
}
