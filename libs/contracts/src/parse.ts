/**
 * Boundary parsing: turns zod issues into one readable line that names the
 * offending field ("changes: fields.title: expected string, received number").
 * Everything entering a process goes through `parseWith`; nothing inside re-validates.
 */
import type { z } from 'zod';
import { ErrorCode, FerryError } from './errors.js';

export type ParseResult<T> = { ok: true; value: T } | { ok: false; message: string };

/** A schema whose output is `T`, for code that takes one without depending on zod itself. */
export type Schema<T> = z.ZodType<T>;

/** Renders a zod issue path as `a.b[2].c`; the root is `(root)`. */
export function formatPath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return '(root)';
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out === '' ? String(key) : `.${String(key)}`;
  }
  return out;
}

/** One line per issue, joined by `; `, each led by the field it concerns. */
export function formatIssues(issues: readonly z.core.$ZodIssue[], context?: string): string {
  const parts = issues.slice(0, 8).map((issue) => {
    const path = formatPath(issue.path);
    return `${path}: ${describeIssue(issue)}`;
  });
  if (issues.length > 8) parts.push(`… and ${issues.length - 8} more`);
  const body = parts.join('; ');
  return context === undefined ? body : `${context}: ${body}`;
}

function describeIssue(issue: z.core.$ZodIssue): string {
  if (issue.code === 'unrecognized_keys') {
    return `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
  }
  if (issue.code === 'invalid_key' || issue.code === 'invalid_element') {
    // Say why the key (or map element) is wrong, not only that it is.
    const inner = issue.issues.map((i) => describeIssue(i)).join(', ');
    return issue.code === 'invalid_key' ? `invalid field name: ${inner}` : `invalid element: ${inner}`;
  }
  // zod's default messages start with "Invalid input: "; the path already says where.
  return issue.message.replace(/^Invalid input: /, '');
}

/** Parses `value` with `schema`; never throws. */
export function parseWith<S extends z.ZodType>(schema: S, value: unknown, context?: string): ParseResult<z.output<S>> {
  const result = schema.safeParse(value);
  if (result.success) return { ok: true, value: result.data };
  return { ok: false, message: formatIssues(result.error.issues, context) };
}

/**
 * Decodes JSON bytes or text, then parses; malformed JSON is reported like a
 * schema issue. `surely` (fast-check.ts) may vouch for the decoded value,
 * which is then taken as it is; zod decides (and words) everything else.
 */
export function decodeWith<S extends z.ZodType>(
  schema: S,
  data: Uint8Array | string,
  context?: string,
  surely?: (raw: unknown) => boolean,
): ParseResult<z.output<S>> {
  let raw: unknown;
  try {
    raw = JSON.parse(typeof data === 'string' ? data : textDecoder.decode(data));
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    return { ok: false, message: `${context === undefined ? '' : `${context}: `}(root): not valid JSON (${reason})` };
  }
  if (surely?.(raw) === true) return { ok: true, value: raw as z.output<S> };
  return parseWith(schema, raw, context);
}

const textDecoder = new TextDecoder('utf-8', { fatal: false });

/**
 * Decodes a row read back from a store file. A row that fails its schema means
 * the file was damaged or written by another version: that is an `internal`
 * error naming the row, never a crash further in on a value of the wrong shape.
 */
export function decodeStored<S extends z.ZodType>(schema: S, text: string, where: string): z.output<S> {
  const decoded = decodeWith(schema, text, where);
  if (!decoded.ok) throw new FerryError(ErrorCode.Internal, `stored row is not valid: ${decoded.message}`);
  return decoded.value;
}
