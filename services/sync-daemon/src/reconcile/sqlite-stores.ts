/**
 * The materializer's stores over the daemon's SQLite file: confirmed records
 * (identity-mapped, written back in the caller's transaction), pending actions
 * (the WAL itself) and per-client applied floors. Nothing here loads the whole
 * state: records are read on demand and the cache is trimmed between batches.
 */
import type Database from 'better-sqlite3';
import { ErrorCode, FerryError, parseWith, seqSchema, type Action } from '@ferry/contracts';
import {
  decodeRecord,
  encodeRecord,
  entityKey,
  type EntityKey,
  type EntityRec,
  type PendingOutcome,
  type PendingStore,
  type RecordStore,
  type SeenSet,
} from '@ferry/domain';
import { KeyedBatch } from '../wal/keyed-batch.js';
import type { WalStore } from '../wal/wal-store.js';

export class SqliteRecordStore implements RecordStore {
  /** null: known to have no row (new entities are looked up at capture and again at acknowledgement). */
  readonly #cache = new Map<string, EntityRec | null>();
  readonly #select;
  readonly #selectMany;
  readonly #upsert;
  readonly #keys;
  readonly #keysOf;

  constructor(db: Database.Database) {
    this.#select = db.prepare<[string, string], { record: string }>(
      'SELECT record FROM entities WHERE collection = ? AND entity_id = ?',
    );
    this.#selectMany = new KeyedBatch<{ collection: string; entity_id: string; record: string }>(
      db,
      2,
      (keys) => `WITH k(collection, entity_id) AS (${keys})
        SELECT collection, entity_id, record FROM entities
        WHERE (collection, entity_id) IN (SELECT collection, entity_id FROM k)`,
    );
    this.#upsert = db.prepare<[string, string, string]>(
      `INSERT INTO entities (collection, entity_id, record) VALUES (?, ?, ?)
       ON CONFLICT (collection, entity_id) DO UPDATE SET record = excluded.record`,
    );
    this.#keys = db.prepare<[], { collection: string; entity_id: string }>(
      'SELECT collection, entity_id FROM entities',
    );
    this.#keysOf = db.prepare<[string], { collection: string; entity_id: string }>(
      'SELECT collection, entity_id FROM entities WHERE collection = ?',
    );
  }

  get(collection: string, id: string): EntityRec | undefined {
    const k = entityKey(collection, id);
    const cached = this.#cache.get(k);
    if (cached !== undefined) return cached ?? undefined;
    const row = this.#select.get(collection, id);
    if (row === undefined) {
      this.#cache.set(k, null);
      return undefined;
    }
    return this.#cacheRow(k, collection, id, row.record);
  }

  /** One query for the records of a batch that are not cached yet; absent ones are cached as absent. */
  prefetch(keys: readonly EntityKey[]): void {
    const missing = new Map<string, EntityKey>();
    for (const k of keys) {
      const ck = entityKey(k[0], k[1]);
      if (!this.#cache.has(ck)) missing.set(ck, k);
    }
    if (missing.size === 0) return;
    for (const row of this.#selectMany.rows([...missing.values()])) {
      this.#cacheRow(entityKey(row.collection, row.entity_id), row.collection, row.entity_id, row.record);
    }
    for (const ck of missing.keys()) if (!this.#cache.has(ck)) this.#cache.set(ck, null);
  }

  #cacheRow(k: string, collection: string, id: string, record: string): EntityRec {
    const rec = decodeRecord(record, collection, id);
    this.#cache.set(k, rec);
    return rec;
  }

  put(rec: EntityRec): void {
    this.#cache.set(entityKey(rec.collection, rec.id), rec);
  }

  /**
   * Runs inside the caller's transaction, so records commit with the cursor
   * that covers them. Rows are written in the compact form (record-codec.ts:
   * each stamp once, less than half the wire form's length, so less to encode
   * and to write); rows of earlier versions, in the wire form, read as they are.
   */
  changed(recs: readonly EntityRec[]): void {
    for (const rec of recs) this.#upsert.run(rec.collection, rec.id, encodeRecord(rec));
  }

  *keys(collection?: string): Iterable<readonly [string, string]> {
    const rows = collection === undefined ? this.#keys.iterate() : this.#keysOf.iterate(collection);
    for (const row of rows) yield [row.collection, row.entity_id];
  }

  /** Between batches: keeps memory bounded (records are persisted, so dropping is safe). */
  trim(maxCached: number): void {
    if (this.#cache.size > maxCached) this.#cache.clear();
  }

  /** After a rolled-back transaction the cached objects may hold unpersisted changes. */
  invalidate(): void {
    this.#cache.clear();
  }
}

export class WalPendingStore implements PendingStore {
  readonly #wal: WalStore;

  constructor(wal: WalStore) {
    this.#wal = wal;
  }

  get size(): number {
    return this.#wal.pendingCount();
  }

  get(id: string): Action | undefined {
    return this.#wal.pendingById(id);
  }

  forEntity(collection: string, id: string): readonly Action[] | undefined {
    const list = this.#wal.pendingFor(collection, id);
    return list.length === 0 ? undefined : list;
  }

  forEntities(keys: readonly EntityKey[]): ReadonlyMap<string, readonly Action[]> {
    return this.#wal.pendingForMany(keys);
  }

  /** Capture appends to the WAL itself; nothing to add here. */
  add(_action: Action): void {}

  remove(id: string, outcome: PendingOutcome): Action | undefined {
    return this.#wal.settle(id, outcome);
  }

  removeMany(acks: readonly { readonly id: string; readonly seq: number }[]): ReadonlyMap<string, Action> {
    return this.#wal.settleAcknowledged(acks);
  }

  keys(collection?: string): Iterable<readonly [string, string]> {
    const all = this.#wal.pendingKeys();
    if (collection === undefined) return all;
    return (function* () {
      for (const k of all) if (k[0] === collection) yield k;
    })();
  }

  *all(): Iterable<Action> {
    let after = 0;
    for (;;) {
      const page = this.#wal.readPending(after, 1000);
      if (page.length === 0) return;
      yield* page;
      after = page[page.length - 1]?.clientSeq ?? after;
    }
  }
}

/**
 * Per-client floor of applied clientSeqs, cached in memory. Inside a
 * transaction a floor is written once, by `flush` before the commit, however
 * many of the client's actions the transaction folds; outside one, at once.
 */
export class SqliteSeenSet implements SeenSet {
  readonly #db: Database.Database;
  readonly #floors = new Map<string, number>();
  /** Clients whose floor moved in the open transaction and is not written yet. */
  readonly #dirty = new Set<string>();
  readonly #select;
  readonly #upsert;

  constructor(db: Database.Database) {
    this.#db = db;
    this.#select = db.prepare<[], { client_id: string; floor: unknown }>('SELECT client_id, floor FROM applied_floor');
    this.#upsert = db.prepare<[string, number]>(
      `INSERT INTO applied_floor (client_id, floor) VALUES (?, ?)
       ON CONFLICT (client_id) DO UPDATE SET floor = excluded.floor`,
    );
    this.reload();
  }

  has(clientId: string, clientSeq: number): boolean {
    return clientSeq <= (this.#floors.get(clientId) ?? 0);
  }

  /**
   * A client's actions reach this replica in clientSeq order (the server
   * stores them so, and its own are acknowledged so); a skipped clientSeq is
   * one the server rejected, which never arrives.
   */
  add(clientId: string, clientSeq: number): boolean {
    if (this.has(clientId, clientSeq)) return false;
    this.#floors.set(clientId, clientSeq);
    if (this.#db.inTransaction) this.#dirty.add(clientId);
    else this.#upsert.run(clientId, clientSeq);
    return true;
  }

  /** Writes the floors moved in this transaction; the reconciler calls it last, inside the transaction. */
  flush(): void {
    for (const clientId of this.#dirty) this.#upsert.run(clientId, this.#floors.get(clientId) ?? 0);
    this.#dirty.clear();
  }

  /** Reads the floors from the table (at start, and after a rolled-back transaction). */
  reload(): void {
    this.#dirty.clear();
    this.#floors.clear();
    for (const row of this.#select.iterate()) {
      // A damaged row is an internal error that names it: a wrong floor would fold actions twice or never.
      const floor = parseWith(seqSchema, row.floor, `applied_floor row ${row.client_id}`);
      if (!floor.ok) throw new FerryError(ErrorCode.Internal, `stored row is not valid: ${floor.message}`);
      this.#floors.set(row.client_id, floor.value);
    }
  }
}
