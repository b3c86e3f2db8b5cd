/**
 * How the SQLite stores (the API's `entities.json`, the daemon's
 * `entities.record`) keep an entity record: text only, no I/O here. The wire
 * form (contracts `EntityRecord`, what snapshots send) repeats the writing
 * action's stamp in every cell and the entity's key in the row; here each
 * distinct stamp is written once and cells point at it, which makes a record
 * about as long as the action that created it instead of 2.5 times that.
 *
 *   [1, version, hlc, seq, [hlc, clientId, id, …stamps], created, deleted,
 *    [name, value, stamp, …fields], [name, value, stamp, …held]]
 *
 * created/deleted/stamp are indexes into the stamps (-1: none). Rows written
 * in the wire form by earlier versions (a JSON object) are read as they are.
 * Reading validates through `entityRecordSchema`, as every stored row is.
 */
import {
  ErrorCode,
  FerryError,
  decodeStored,
  entityRecordSchema,
  parseWith,
  type EntityRecord,
  type JsonValue,
} from '@ferry/contracts';
import { recordFromJson, type Cell, type CellBag, type EntityRec } from './entity-record.js';
import type { StampRef } from './order.js';

const FORMAT = 1;

/** The record's row text. */
export function encodeRecord(rec: EntityRec): string {
  if (rec.custom !== null) {
    // The stored form has no place for a custom merge's history: refuse rather than lose it.
    throw new Error(`${rec.collection}/${rec.id}: records of custom-merge collections cannot be serialised`);
  }
  const stamps: (string | number)[] = [];
  const created = rec.created === null ? -1 : stampIndex(stamps, rec.created);
  const deleted = rec.deleted === null ? -1 : stampIndex(stamps, rec.deleted);
  const fields = cellsOut(rec.fields, stamps);
  const held = rec.held === null ? [] : cellsOut(rec.held, stamps);
  return JSON.stringify([FORMAT, rec.version, rec.hlc, rec.seq, stamps, created, deleted, fields, held]);
}

function stampIndex(stamps: (string | number)[], s: StampRef): number {
  for (let i = 0; i < stamps.length; i += 3) {
    if (stamps[i + 2] === s.id && stamps[i] === s.hlc && stamps[i + 1] === s.clientId) return i / 3;
  }
  stamps.push(s.hlc, s.clientId, s.id);
  return stamps.length / 3 - 1;
}

function cellsOut(cells: CellBag, stamps: (string | number)[]): (string | number | JsonValue)[] {
  const out: (string | number | JsonValue)[] = [];
  for (const name in cells) {
    const c = cells[name] as Cell;
    out.push(name, c.value, stampIndex(stamps, c));
  }
  return out;
}

/**
 * The record in the wire form, from a row of either form. Wire-form rows are
 * passed on as stored (the daemon checks every snapshot reply against its
 * schema); a compact row that does not decode is an internal error naming it.
 */
export function recordWireJson(text: string, collection: string, id: string): string {
  if (text.charCodeAt(0) !== 0x5b) return text; // `[`: compact; anything else is the wire form already
  try {
    return JSON.stringify(compactToWire(JSON.parse(text) as unknown, collection, id));
  } catch (err) {
    const where = `entities row ${collection}/${id}`;
    throw new FerryError(ErrorCode.Internal, `stored row is not valid: ${where}: ${(err as Error).message}`);
  }
}

/** The held record from a row of either form; a row that does not decode is an internal error naming it. */
export function decodeRecord(text: string, collection: string, id: string): EntityRec {
  const where = `entities row ${collection}/${id}`;
  if (text.charCodeAt(0) !== 0x5b) return recordFromJson(decodeStored(entityRecordSchema, text, where));
  let wire: EntityRecord;
  try {
    wire = compactToWire(JSON.parse(text) as unknown, collection, id);
  } catch (err) {
    throw new FerryError(ErrorCode.Internal, `stored row is not valid: ${where}: ${(err as Error).message}`);
  }
  const parsed = parseWith(entityRecordSchema, wire, where);
  if (!parsed.ok) throw new FerryError(ErrorCode.Internal, `stored row is not valid: ${parsed.message}`);
  return recordFromJson(parsed.value);
}

/** Compact → wire form, key order as `recordToJson` writes it. Throws on a malformed row. */
function compactToWire(row: unknown, collection: string, id: string): EntityRecord {
  if (!Array.isArray(row) || row.length !== 9 || row[0] !== FORMAT) throw new Error('not a stored record');
  const stamps = row[4] as unknown;
  if (!Array.isArray(stamps) || stamps.length % 3 !== 0) throw new Error('bad stamps');
  const stamp = (i: unknown) => {
    if (i === -1) return null;
    if (typeof i !== 'number' || !Number.isInteger(i) || i < 0 || i * 3 >= stamps.length) {
      throw new Error('bad stamp index');
    }
    return { hlc: stamps[i * 3] as number, clientId: stamps[i * 3 + 1] as string, id: stamps[i * 3 + 2] as string };
  };
  const cells = (flat: unknown) => {
    if (!Array.isArray(flat) || flat.length % 3 !== 0) throw new Error('bad cells');
    const out: Record<string, { value: JsonValue; stamp: unknown }> = {};
    for (let i = 0; i < flat.length; i += 3) {
      const s = stamp(flat[i + 2]);
      if (s === null) throw new Error('cell without a stamp');
      const name = flat[i] as string;
      // Never written (fieldNameSchema); assigning it would set the prototype instead.
      if (name === '__proto__') throw new Error('bad field name');
      out[name] = { value: flat[i + 1] as JsonValue, stamp: s };
    }
    return out;
  };
  return {
    collection,
    id,
    fields: cells(row[7]),
    held: cells(row[8]),
    created: stamp(row[5]),
    deleted: stamp(row[6]),
    version: row[1] as number,
    hlc: row[2] as number,
    seq: row[3] as number,
  } as EntityRecord;
}
