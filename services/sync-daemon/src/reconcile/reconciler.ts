/**
 * The daemon's reconciler: libs/domain's Materializer over the daemon's SQLite
 * file, so `materialized = confirmed ⊕ pending` holds with the WAL as the
 * pending set. Each step is one transaction: pulled actions commit together
 * with the cursor and the clock that cover them; acknowledgements and
 * rejections commit with their WAL marks.
 */
import type { Action, ConflictRecord, EntityState, StoredAction } from '@ferry/contracts';
import { Materializer, type Acknowledgement, type PolicyBook, type Rejection } from '@ferry/domain';
import type { WalStore } from '../wal/wal-store.js';
import { SqliteRecordStore, SqliteSeenSet, WalPendingStore } from './sqlite-stores.js';

export interface ReconcilerOptions {
  readonly wal: WalStore;
  readonly policies: PolicyBook;
  readonly now: () => number;
  /** Records kept in memory between batches (they are always persisted). */
  readonly maxCachedRecords?: number;
}

export interface Reconciled {
  /** Entities whose state the app must update, as it must now see them. */
  readonly changed: EntityState[];
  readonly conflicts: ConflictRecord[];
  readonly duplicates: number;
}

export class Reconciler {
  readonly #wal: WalStore;
  readonly #records: SqliteRecordStore;
  readonly #seen: SqliteSeenSet;
  readonly #m: Materializer;
  readonly #now: () => number;
  readonly #maxCached: number;
  readonly #logConflict;
  /** Kept in memory: read on every feed message and state publish; persisted with each page. */
  #cursor: number;

  constructor(options: ReconcilerOptions) {
    this.#wal = options.wal;
    this.#now = options.now;
    this.#maxCached = options.maxCachedRecords ?? 50_000;
    const db = options.wal.db;
    this.#records = new SqliteRecordStore(db);
    this.#seen = new SqliteSeenSet(db);
    this.#m = new Materializer({
      policies: options.policies,
      records: this.#records,
      pending: new WalPendingStore(options.wal),
      seen: this.#seen,
    });
    this.#logConflict = db.prepare<[number, string, string, string]>(
      'INSERT INTO conflicts (at, collection, entity_id, record) VALUES (?, ?, ?, ?)',
    );
    this.#cursor = this.#storedCursor();
  }

  #storedCursor(): number {
    return Number(this.#wal.getMeta('cursor') ?? '0');
  }

  /** The server seq up to which this replica has applied everything. */
  get cursor(): number {
    return this.#cursor;
  }

  /**
   * Folds one pulled page into confirmed state and moves the cursor to `next`,
   * atomically. Every remote hlc advances the clock (server-vetted: no drift bound).
   */
  applyPulled(actions: readonly StoredAction[], next: number): Reconciled {
    return this.#atomically(() => {
      for (const a of actions) {
        const r = this.#wal.clock.receive(a.hlc);
        if (!r.ok) throw new Error(r.message);
      }
      const result = this.#m.applyRemote(actions);
      this.#cursor = Math.max(next, this.#cursor);
      this.#wal.setMeta('cursor', String(this.#cursor));
      this.#wal.setMeta('hlc_last', String(this.#wal.clock.last));
      this.#log(result.conflicts);
      return result;
    });
  }

  /** Server acknowledgements: pending actions move into confirmed state. */
  acknowledge(acks: readonly Acknowledgement[]): void {
    this.#atomically(() => this.#m.confirm(acks));
  }

  /** Permanent rejections: actions leave the local state and are reported. */
  reject(rejections: readonly Rejection[]): Reconciled {
    return this.#atomically(() => {
      const result = this.#m.reject(rejections);
      this.#log(result.conflicts);
      return result;
    });
  }

  /** The state the app must now see for entities whose actions were just captured. */
  viewsOf(actions: readonly Action[]): EntityState[] {
    const keys = new Map<string, readonly [string, string]>();
    for (const a of actions) keys.set(`${a.collection}\u0000${a.entityId}`, [a.collection, a.entityId]);
    return this.#m.materialized(keys.values());
  }

  get(collection: string, id: string): EntityState | null {
    return this.#m.get(collection, id);
  }

  /** Every visible entity of a collection (reads the store; not for hot paths). */
  query(collection: string): EntityState[] {
    return [...this.#m.entities(collection)];
  }

  #log(conflicts: readonly ConflictRecord[]): void {
    const at = this.#now();
    for (const c of conflicts) this.#logConflict.run(at, c.collection, c.entityId, JSON.stringify(c));
  }

  #atomically<T>(fn: () => T): T {
    try {
      const out = this.#wal.db.transaction(fn)();
      this.#records.trim(this.#maxCached);
      return out;
    } catch (err) {
      // The transaction rolled back: drop every in-memory copy that may be ahead of the file.
      this.#records.invalidate();
      this.#seen.reload();
      this.#wal.reloadCounters();
      this.#cursor = this.#storedCursor();
      throw err;
    }
  }
}
