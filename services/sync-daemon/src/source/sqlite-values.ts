/**
 * SQLite values ↔ JSON field values ↔ entity ids, for the attach mode. Every
 * mapping here is reversible and unambiguous (docs/attach.md, "Types" and
 * "Entity ids"); a value that cannot be mapped is an error naming it, never a
 * silent approximation.
 */
import { MAX_ENTITY_ID_LENGTH, type JsonValue } from '@ferry/contracts';
import { sameJson } from '@ferry/domain';

/** A value as SQLite stores it (integers beyond 2^53 as bigint). */
export type SqliteValue = null | number | bigint | string | Buffer;

/** The type affinity SQLite derives from a declared column type (datatype3.html §3.1). */
export type Affinity = 'INTEGER' | 'TEXT' | 'BLOB' | 'REAL' | 'NUMERIC';

export function affinityOf(declaredType: string, strict: boolean): Affinity {
  const t = declaredType.toUpperCase();
  // In a STRICT table, ANY keeps every value exactly as given: no conversion, like BLOB affinity.
  if (strict && t === 'ANY') return 'BLOB';
  if (t.includes('INT')) return 'INTEGER';
  if (t.includes('CHAR') || t.includes('CLOB') || t.includes('TEXT')) return 'TEXT';
  if (t === '' || t.includes('BLOB')) return 'BLOB';
  if (t.includes('REAL') || t.includes('FLOA') || t.includes('DOUB')) return 'REAL';
  return 'NUMERIC';
}

export class ValueError extends Error {
  override readonly name = 'ValueError';
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const INTEGER_TEXT = /^-?(0|[1-9][0-9]*)$/;

/**
 * Parses the text the triggers write: SQL literals as SQLite's quote() renders
 * them (NULL, integers, reals, 'text' with '' escapes, X'hex'), separated by
 * commas; an empty slot ("") means "column not included" and comes back as
 * undefined. quote() keeps all 64 bits of an integer and renders reals so they
 * round-trip, which is why it is used instead of the JSON functions.
 */
export function parseQuotedList(text: string): (SqliteValue | undefined)[] {
  const out: (SqliteValue | undefined)[] = [];
  let i = 0;
  const n = text.length;
  for (;;) {
    const c = text.charCodeAt(i);
    if (i >= n || c === 44 /* , */) {
      out.push(undefined);
    } else if (c === 39 /* ' */) {
      let s = '';
      let start = i + 1;
      let j = start;
      for (;;) {
        const q = text.indexOf("'", j);
        if (q < 0) throw new ValueError(`unterminated text literal at offset ${i}`);
        if (text.charCodeAt(q + 1) === 39) {
          s += text.slice(start, q + 1);
          j = q + 2;
          start = j;
          continue;
        }
        s += text.slice(start, q);
        i = q + 1;
        break;
      }
      out.push(s);
    } else if ((c === 88 || c === 120) /* X x */ && text.charCodeAt(i + 1) === 39) {
      const q = text.indexOf("'", i + 2);
      if (q < 0) throw new ValueError(`unterminated blob literal at offset ${i}`);
      out.push(Buffer.from(text.slice(i + 2, q), 'hex'));
      i = q + 1;
    } else {
      let j = text.indexOf(',', i);
      if (j < 0) j = n;
      const token = text.slice(i, j);
      i = j;
      if (token === 'NULL') out.push(null);
      else if (INTEGER_TEXT.test(token)) {
        const big = BigInt(token);
        out.push(big >= -MAX_SAFE && big <= MAX_SAFE ? Number(token) : big);
      } else {
        const real = Number(token);
        if (token === '' || Number.isNaN(real)) throw new ValueError(`unreadable literal "${token.slice(0, 40)}"`);
        // quote() renders infinities as 9.0e+999, which reads back as Infinity: kept, refused later.
        out.push(real);
      }
    }
    if (i >= n) break;
    if (text.charCodeAt(i) !== 44) throw new ValueError(`expected "," at offset ${i}`);
    i++;
    if (i >= n) {
      out.push(undefined);
      break;
    }
  }
  return out;
}

/**
 * A SQLite value as a JSON field value: NULL, text and safe integers as
 * themselves, finite reals as numbers, integers beyond ±2^53 as
 * `{"$int": "<decimal>"}`, BLOBs as `{"$blob": "<base64>"}`. Throws for an
 * infinite REAL (JSON has no such number).
 */
export function toJsonValue(v: SqliteValue): JsonValue {
  if (v === null || typeof v === 'string') return v;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new ValueError(`the REAL ${v} has no JSON form`);
    return v;
  }
  if (typeof v === 'bigint') return v >= -MAX_SAFE && v <= MAX_SAFE ? Number(v) : { $int: v.toString() };
  return { $blob: v.toString('base64') };
}

/**
 * A JSON field value as the value to bind when writing it into the app's
 * table. Integral numbers bind as INTEGER (better-sqlite3 would bind a number
 * as REAL), booleans as 1/0, the two tagged forms back to what they encode,
 * and any other object or array (only a bus-mode app can write one) as its
 * JSON text.
 */
export function toBindValue(v: JsonValue): SqliteValue {
  if (v === null || typeof v === 'string') return v;
  if (typeof v === 'boolean') return v ? 1n : 0n;
  // Only safe integers bind as INTEGER: a whole number beyond 2^53 is a REAL in JSON
  // (and one beyond 2^63 cannot be bound as an INTEGER at all).
  if (typeof v === 'number') return Number.isSafeInteger(v) && !Object.is(v, -0) ? BigInt(v) : v;
  const tagged = taggedValue(v);
  if (tagged !== undefined) return tagged;
  return JSON.stringify(v);
}

function taggedValue(v: JsonValue): SqliteValue | undefined {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const keys = Object.keys(v);
  if (keys.length !== 1) return undefined;
  const inner = v[keys[0] as string];
  if (typeof inner !== 'string') return undefined;
  if (keys[0] === '$blob' && /^[A-Za-z0-9+/]*={0,2}$/.test(inner)) return Buffer.from(inner, 'base64');
  if (keys[0] === '$int' && INTEGER_TEXT.test(inner)) {
    const big = BigInt(inner);
    if (big >= INT64_MIN && big <= INT64_MAX) return big;
  }
  return undefined;
}

/** Whether a value read from the app (safeIntegers) already equals a field value. */
export function sameValue(stored: SqliteValue, field: JsonValue): boolean {
  let mine: JsonValue;
  try {
    mine = toJsonValue(stored);
  } catch {
    return false;
  }
  return sameJson(mine, field);
}

/** What the id codec needs to know about a table's primary key. */
export interface KeySpec {
  readonly table: string;
  readonly pk: readonly { readonly name: string; readonly affinity: Affinity }[];
}

/**
 * The entity id of a row (docs/attach.md, "Entity ids"). The common cases read
 * as themselves: a one-column TEXT key is its text, a one-column INTEGER key its
 * decimal digits. Everything else (composite keys, other types, a text that is
 * empty or starts with "[") is a JSON array of the key values, encoded as
 * fields are; an id starting with "[" is always that array, so the two forms
 * never collide.
 */
export function encodeEntityId(spec: KeySpec, values: readonly SqliteValue[]): string {
  values.forEach((v, i) => {
    if (v === null) throw new ValueError(`primary key column ${spec.pk[i]?.name ?? i} is NULL`);
  });
  let id: string | undefined;
  if (spec.pk.length === 1) {
    const v = values[0] as SqliteValue;
    const affinity = spec.pk[0]?.affinity;
    if (affinity === 'TEXT' && typeof v === 'string' && v !== '' && !v.startsWith('[')) id = v;
    else if (affinity === 'INTEGER' && (typeof v === 'bigint' || (typeof v === 'number' && Number.isInteger(v))))
      id = String(v);
  }
  id ??= JSON.stringify(values.map((v) => toJsonValue(v)));
  if (id.length > MAX_ENTITY_ID_LENGTH) {
    throw new ValueError(`the primary key encodes to ${id.length} characters, the limit is ${MAX_ENTITY_ID_LENGTH}`);
  }
  return id;
}

/** The primary-key values an entity id names in `spec`'s table; throws when it names none. */
export function decodeEntityId(spec: KeySpec, id: string): SqliteValue[] {
  if (id.startsWith('[')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(id);
    } catch {
      throw new ValueError(`entity id ${JSON.stringify(id)} is not a JSON array`);
    }
    if (!Array.isArray(parsed) || parsed.length !== spec.pk.length) {
      throw new ValueError(`entity id ${JSON.stringify(id)} does not name the ${spec.pk.length} key column(s)`);
    }
    return parsed.map((v: JsonValue) => {
      const b = toBindValue(v);
      if (b === null || (typeof v === 'object' && v !== null && typeof b === 'string')) {
        throw new ValueError(`entity id ${JSON.stringify(id)} holds a value that is not a key`);
      }
      return b;
    });
  }
  const only = spec.pk.length === 1 ? spec.pk[0] : undefined;
  if (only?.affinity === 'TEXT') return [id];
  if (only?.affinity === 'INTEGER' && INTEGER_TEXT.test(id)) {
    const big = BigInt(id);
    if (big >= INT64_MIN && big <= INT64_MAX) return [big];
  }
  throw new ValueError(`entity id ${JSON.stringify(id)} is not a key of table ${spec.table}`);
}
