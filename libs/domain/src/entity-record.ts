/**
 * The mergeable entity record and its last-writer-wins merge: a join
 * semilattice whose state after any set of actions, in any order, equals the
 * replay oracle's (oracle.ts). Nothing here keeps history.
 *
 *   fields   per field, the latest write among creates and the updates later
 *            than the earliest create              (LWW by (hlc, clientId, id))
 *   held     per field, the latest update earlier than every known create:
 *            "updates never create", but a create that arrives late may turn
 *            out to precede it, and then it takes effect
 *   created  earliest create;  deleted  earliest delete (delete wins: once set,
 *            fields and held are dropped and nothing writes again)
 *   version  number of distinct actions folded in;  hlc  their maximum
 *
 * Invariants (docs/invariants.md): R1 deleted => fields and held empty;
 * R2 every held cell precedes created, and no field is both held and live;
 * R3 every field cell is at or after created. Together they make the record
 * canonical: replicas that folded the same actions hold identical records.
 */
import type { Action, EntityRecord, EntityState, Fields, JsonValue } from '@ferry/contracts';
import { compareStamps, type StampRef } from './order.js';
import type { CustomState } from './policy.js';

/**
 * A field value and the stamp of its write. Cells are updated in place (an
 * update allocates nothing), so a record's cells are never shared: clones copy them.
 */
export interface Cell extends StampRef {
  value: JsonValue;
  hlc: number;
  clientId: string;
  id: string;
  /** Server seq of the writing action; 0 while unknown (pending). */
  seq: number;
}

/**
 * Field name → cell. The objects have no Object.prototype in their chain, so a
 * field named "constructor" or "toString" is just a key, yet (unlike
 * Object.create(null)) they stay in V8's fast mode with inline caches.
 */
export type CellBag = Record<string, Cell>;
const BAG_PROTO: object = Object.freeze(Object.create(null) as object);

export function newBag(): CellBag {
  return Object.create(BAG_PROTO) as CellBag;
}

export function bagIsEmpty(bag: CellBag): boolean {
  for (const _ in bag) return false;
  return true;
}

export interface EntityRec {
  readonly collection: string;
  readonly id: string;
  fields: CellBag;
  /** The live values alone, kept in step with `fields`, so a view is one object copy (R6). */
  values: Fields;
  held: CellBag | null;
  created: StampRef | null;
  deleted: StampRef | null;
  version: number;
  hlc: number;
  /** Highest server seq folded in (0 if none). */
  seq: number;
  /** Only for collections with a custom merge: their history and folded state. */
  custom: CustomPart | null;
  /** Scratch for callers: where the materializer listed the record in its current batch, to dedupe without a Set. */
  mark: number;
}

/** A custom-merge entity keeps its actions, sorted, to re-fold when one arrives out of order. */
export interface CustomPart {
  history: Action[];
  state: CustomState;
}

/** What a merge tells its caller about a write that beat or lost to another client's. */
export interface FieldClash {
  readonly field: string | null;
  readonly winner: Cell | StampRef;
  readonly loser: Cell | StampRef;
  readonly kind: 'lww' | 'delete-wins';
}
export type ClashSink = (rec: EntityRec, clash: FieldClash) => void;

export function emptyRecord(collection: string, id: string): EntityRec {
  return {
    collection,
    id,
    fields: newBag(),
    values: {},
    held: null,
    created: null,
    deleted: null,
    version: 0,
    hlc: 0,
    seq: 0,
    custom: null,
    mark: 0,
  };
}

export function cloneRecord(rec: EntityRec): EntityRec {
  return {
    collection: rec.collection,
    id: rec.id,
    fields: copyCells(rec.fields),
    values: { ...rec.values },
    held: rec.held === null ? null : copyCells(rec.held),
    created: rec.created,
    deleted: rec.deleted,
    version: rec.version,
    hlc: rec.hlc,
    seq: rec.seq,
    custom: rec.custom === null ? null : { history: [...rec.custom.history], state: rec.custom.state },
    mark: 0,
  };
}

function copyCells(cells: CellBag): CellBag {
  const out = newBag();
  for (const name in cells) {
    const c = cells[name] as Cell;
    out[name] = { value: c.value, hlc: c.hlc, clientId: c.clientId, id: c.id, seq: c.seq };
  }
  return out;
}

function cellOf(action: Action, value: JsonValue, seq: number): Cell {
  return { value, hlc: action.hlc, clientId: action.clientId, id: action.id, seq };
}

/** Deep equality of JSON values, independent of key order, cheap for the usual primitives. */
export function sameJson(a: JsonValue, b: JsonValue): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((x, i) => sameJson(x, b[i] as JsonValue));
  }
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => Object.hasOwn(b, k) && sameJson(a[k] as JsonValue, b[k] as JsonValue));
}

/**
 * Reports a clash only where the two writes were certainly concurrent: the
 * incoming write loses (its writer cannot have seen the winner, or its hlc
 * would be larger), or it wins over a write the server sequenced after it.
 */
function reportFieldClash(
  rec: EntityRec,
  field: string,
  current: Cell,
  action: Action,
  value: JsonValue,
  seq: number,
  incomingWins: boolean,
  sink: ClashSink,
): void {
  if (current.clientId === action.clientId || sameJson(current.value, value)) return;
  if (!incomingWins) sink(rec, { field, winner: { ...current }, loser: cellOf(action, value, seq), kind: 'lww' });
  else if (current.seq > 0 && seq > 0 && current.seq > seq) {
    sink(rec, { field, winner: cellOf(action, value, seq), loser: { ...current }, kind: 'lww' });
  }
}

/** Last-writer-wins on one live field; updates the winning cell in place. */
function mergeLive(
  rec: EntityRec,
  field: string,
  action: Action,
  value: JsonValue,
  seq: number,
  sink: ClashSink | undefined,
): void {
  const current = rec.fields[field];
  if (current === undefined) {
    rec.fields[field] = cellOf(action, value, seq);
    rec.values[field] = value;
    // A live value is after the create, so it beats any held one: drop it (R2).
    const held = rec.held;
    if (held !== null && held[field] !== undefined) {
      delete held[field];
      if (bagIsEmpty(held)) rec.held = null;
    }
    return;
  }
  const cmp = compareStamps(action, current);
  if (cmp === 0) return;
  // Cheap pre-check; reportFieldClash decides (values may still be equal).
  if (sink !== undefined && current.clientId !== action.clientId && (cmp < 0 || (seq > 0 && current.seq > seq))) {
    reportFieldClash(rec, field, current, action, value, seq, cmp > 0, sink);
  }
  if (cmp > 0) {
    rec.values[field] = value;
    current.value = value;
    current.hlc = action.hlc;
    current.clientId = action.clientId;
    current.id = action.id;
    current.seq = seq;
  }
}

/** Moves a held cell into the live fields (same rules as a fresh write). */
function promoteCell(rec: EntityRec, field: string, cell: Cell, sink: ClashSink | undefined): void {
  const current = rec.fields[field];
  if (current === undefined) {
    rec.fields[field] = cell;
    rec.values[field] = cell.value;
    return;
  }
  const cmp = compareStamps(cell, current);
  if (cmp > 0) {
    rec.fields[field] = cell;
    rec.values[field] = cell.value;
  }
  if (
    sink !== undefined &&
    cmp !== 0 &&
    current.clientId !== cell.clientId &&
    !sameJson(current.value, cell.value) &&
    cmp < 0
  ) {
    sink(rec, { field, winner: { ...current }, loser: cell, kind: 'lww' });
  }
}

function mergeHeld(rec: EntityRec, field: string, action: Action, value: JsonValue, seq: number): void {
  if (rec.fields[field] !== undefined) return; // already beaten by a live value
  const held = (rec.held ??= newBag());
  const current = held[field];
  if (current === undefined || compareStamps(action, current) > 0) held[field] = cellOf(action, value, seq);
}

/**
 * Folds one action into the record under last-writer-wins. The caller has
 * already made sure the action was not folded in before (version counts it).
 */
export function applyLww(rec: EntityRec, action: Action, sink?: ClashSink): void {
  const seq = action.seq ?? 0;
  // One number compared first: rec.hlc bounds every stamp the record holds (R4).
  if (action.hlc > rec.hlc && action.op !== 'delete' && (seq === 0 || seq > rec.seq) && isLive(rec)) {
    writeInOrder(rec, action, seq);
    return;
  }
  rec.version += 1;
  if (action.hlc > rec.hlc) rec.hlc = action.hlc;
  if (seq > rec.seq) rec.seq = seq;

  if (rec.deleted !== null) {
    if (action.op === 'delete') {
      if (compareStamps(action, rec.deleted) < 0) rec.deleted = stampFrom(action);
    } else if (action.op === 'create' && (rec.created === null || compareStamps(action, rec.created) < 0)) {
      // Kept so that every replica's tombstone is the same record, whatever the arrival order.
      rec.created = stampFrom(action);
    }
    if (
      action.op !== 'delete' &&
      sink !== undefined &&
      action.clientId !== rec.deleted.clientId &&
      compareStamps(action, rec.deleted) > 0
    ) {
      // A write ordered after the delete: its writer had not seen the delete.
      sink(rec, { field: null, winner: rec.deleted, loser: stampFrom(action), kind: 'delete-wins' });
    }
    return;
  }

  const fields = action.fields;
  switch (action.op) {
    case 'delete': {
      if (sink !== undefined) reportDeleteClash(rec, action, sink);
      rec.deleted = stampFrom(action);
      rec.fields = newBag();
      rec.values = {};
      rec.held = null;
      return;
    }
    case 'create': {
      if (rec.created === null || compareStamps(action, rec.created) < 0) {
        rec.created = stampFrom(action);
        promoteHeld(rec, sink);
      }
      if (fields !== undefined) {
        for (const field in fields) mergeLive(rec, field, action, fields[field] as JsonValue, seq, sink);
      }
      return;
    }
    case 'update': {
      if (fields === undefined) return;
      const live = rec.created !== null && compareStamps(action, rec.created) > 0;
      for (const field in fields) {
        if (live) mergeLive(rec, field, action, fields[field] as JsonValue, seq, sink);
        else mergeHeld(rec, field, action, fields[field] as JsonValue, seq);
      }
      return;
    }
  }
}

function isLive(rec: EntityRec): boolean {
  return rec.created !== null && rec.deleted === null;
}

/**
 * The in-order case, nearly every action a replica sees: a create or update
 * of a live entity, ordered after every stamp the record holds (its hlc is
 * above `rec.hlc`, which bounds `created` and every cell, R4) and, if
 * sequenced, sequenced after every write it holds (seq above `rec.seq`). It
 * wins every field and clashes with nothing (reportFieldClash would find no
 * loser concurrent for certain), so the cells are overwritten in place
 * without reading a stamp: the slow path's comparisons are all foregone.
 */
function writeInOrder(rec: EntityRec, action: Action, seq: number): void {
  rec.version += 1;
  rec.hlc = action.hlc;
  if (seq > 0) rec.seq = seq;
  const fields = action.fields;
  if (fields === undefined) return;
  const cells = rec.fields;
  const values = rec.values;
  for (const field in fields) {
    const value = fields[field] as JsonValue;
    const cell = cells[field];
    if (cell === undefined) {
      mergeLive(rec, field, action, value, seq, undefined); // a new field: nothing to clash with
      continue;
    }
    values[field] = value;
    cell.value = value;
    cell.hlc = action.hlc;
    cell.clientId = action.clientId;
    cell.id = action.id;
    cell.seq = seq;
  }
}

/** After `created` moved earlier: held updates now after it take effect. */
function promoteHeld(rec: EntityRec, sink: ClashSink | undefined): void {
  const held = rec.held;
  const created = rec.created;
  if (held === null || created === null) return;
  for (const field in held) {
    const cell = held[field] as Cell;
    if (compareStamps(cell, created) > 0) {
      delete held[field];
      promoteCell(rec, field, cell, sink);
    }
  }
  if (bagIsEmpty(held)) rec.held = null;
}

/** Live writes of other clients ordered after the delete were lost to it. */
function reportDeleteClash(rec: EntityRec, del: Action, sink: ClashSink): void {
  let latest: Cell | null = null;
  for (const field in rec.fields) {
    const cell = rec.fields[field] as Cell;
    if (
      cell.clientId !== del.clientId &&
      compareStamps(cell, del) > 0 &&
      (latest === null || compareStamps(cell, latest) > 0)
    ) {
      latest = cell;
    }
  }
  if (latest !== null) sink(rec, { field: null, winner: stampFrom(del), loser: { ...latest }, kind: 'delete-wins' });
}

function stampFrom(s: StampRef): StampRef {
  return { hlc: s.hlc, clientId: s.clientId, id: s.id };
}

type ViewArgs = [collection: string, id: string, fields: Fields, deleted: boolean, version: number, hlc: number];

/**
 * Makes views with `new`, not with an object literal: V8 pretenures a
 * literal's allocation site when it sees many of its objects alive at a
 * scavenge (a batch's views are, while the batch runs), and every later view
 * then dies in old space: bench:domain spent twice the GC time, depending on
 * where the scavenges fell. A constructor call has no allocation site. Its
 * prototype is Object.prototype, so a view is the plain object a literal was.
 */
const View = function (
  this: Record<string, unknown>,
  collection: string,
  id: string,
  fields: Fields,
  deleted: boolean,
  version: number,
  hlc: number,
) {
  this.collection = collection;
  this.id = id;
  this.fields = fields;
  this.deleted = deleted;
  this.version = version;
  this.hlc = hlc;
} as unknown as new (...args: ViewArgs) => EntityState;
View.prototype = Object.prototype;

/** The record as the app sees it; null while no create or delete is known. */
export function viewRecord(rec: EntityRec): EntityState | null {
  if (rec.custom !== null) return viewCustom(rec, rec.custom.state);
  if (rec.deleted === null && rec.created === null) return null;
  // Field names are never "__proto__" (contracts), so assign copies what a spread would.
  const fields = rec.deleted === null ? Object.assign({}, rec.values) : {};
  return new View(rec.collection, rec.id, fields, rec.deleted !== null, rec.version, rec.hlc);
}

function viewCustom(rec: EntityRec, state: CustomState): EntityState | null {
  if (!state.exists && !state.deleted) return null;
  return {
    collection: rec.collection,
    id: rec.id,
    fields: { ...state.fields },
    deleted: state.deleted,
    version: rec.version,
    hlc: rec.hlc,
  } as EntityState;
}

function cellsToJson(cells: CellBag | null): EntityRecord['fields'] {
  const out: EntityRecord['fields'] = {};
  if (cells === null) return out;
  for (const name in cells) {
    const c = cells[name] as Cell;
    out[name] = {
      value: c.value,
      stamp: { hlc: c.hlc, clientId: c.clientId, id: c.id },
    } as EntityRecord['fields'][string];
  }
  return out;
}

/** Serialisable form (contracts `EntityRecord`), e.g. for snapshots and stores. */
export function recordToJson(rec: EntityRec): EntityRecord {
  if (rec.custom !== null) {
    // The serialised form has no place for a custom merge's history: refuse rather than lose it.
    throw new Error(`${rec.collection}/${rec.id}: records of custom-merge collections cannot be serialised`);
  }
  return {
    collection: rec.collection,
    id: rec.id,
    fields: cellsToJson(rec.fields),
    held: cellsToJson(rec.held),
    created: rec.created === null ? null : stampFrom(rec.created),
    deleted: rec.deleted === null ? null : stampFrom(rec.deleted),
    version: rec.version,
    hlc: rec.hlc,
    seq: rec.seq,
  } as EntityRecord;
}

function cellsFromJson(cells: EntityRecord['fields'], seq: number): CellBag {
  const out = newBag();
  for (const [name, c] of Object.entries(cells)) {
    out[name] = { value: c.value, hlc: c.stamp.hlc, clientId: c.stamp.clientId, id: c.stamp.id, seq };
  }
  return out;
}

/**
 * Rebuilds a record from its serialised form. Cell seqs are not serialised;
 * they are taken as the record's seq, an upper bound that only serves to
 * suppress clash reports, never to decide a merge.
 */
export function recordFromJson(json: EntityRecord): EntityRec {
  const held = cellsFromJson(json.held, json.seq);
  const values: Fields = {};
  for (const [name, c] of Object.entries(json.fields)) values[name] = c.value;
  return {
    collection: json.collection,
    id: json.id,
    fields: cellsFromJson(json.fields, json.seq),
    values,
    held: bagIsEmpty(held) ? null : held,
    created: json.created,
    deleted: json.deleted,
    version: json.version,
    hlc: json.hlc,
    seq: json.seq,
    custom: null,
    mark: 0,
  };
}
