/**
 * The daemon's reconciler: libs/domain's Materializer over the daemon's SQLite
 * file, so `materialized = confirmed ⊕ pending` holds with the WAL as the
 * pending set. Each step is one transaction: pulled actions commit together
 * with the cursor and the clock that cover them; acknowledgements and
 * rejections commit with their WAL marks; each snapshot page commits with its
 * bootstrap marks (bootstrap-ledger.ts).
 */
import type { Action, ConflictRecord, EntityRecord, EntityState, StoredAction } from '@ferry/contracts';
import { Materializer, recordFromJson, type Acknowledgement, type PolicyBook, type Rejection } from '@ferry/domain';
import type { WalStore } from '../wal/wal-store.js';
import { BootstrapLedger, type BootstrapPhase } from './bootstrap-ledger.js';
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
  readonly #bootstrap: BootstrapLedger;
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
    this.#bootstrap = new BootstrapLedger(options.wal);
    this.#cursor = this.#storedCursor();
  }

  #storedCursor(): number {
    return this.#wal.metaNumber('cursor', 0);
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
      for (const a of actions) this.#receive(a.hlc);
      // Seen before (our own acknowledged actions coming back, mostly): dropped here,
      // before the materializer asks the WAL whether each one is pending.
      let fresh: readonly StoredAction[] = actions.filter((a) => !this.#seen.has(a.clientId, a.clientSeq));
      const seenBefore = actions.length - fresh.length;
      if (this.#bootstrap.phase === 'catching-up') fresh = this.#notInSnapshot(fresh);
      const applied = this.#m.applyRemote(fresh);
      const result = seenBefore === 0 ? applied : { ...applied, duplicates: applied.duplicates + seenBefore };
      this.#cursor = Math.max(next, this.#cursor);
      this.#wal.setMeta('cursor', String(this.#cursor));
      this.#wal.setMeta('hlc_last', String(this.#wal.clock.last));
      // Our acknowledged actions up to the cursor have come back: confirmed state holds them.
      this.#wal.compact(this.#cursor);
      this.#bootstrap.settle(this.#cursor);
      this.#log(result.conflicts);
      return result;
    });
  }

  /**
   * Server acknowledgements: pending actions move into confirmed state. While
   * a bootstrap runs they are held instead (pending, seq recorded) and fold in
   * when the pull brings them back, so our applied floor rises in clientSeq
   * order; one the snapshot already holds is settled at once.
   */
  acknowledge(acks: readonly Acknowledgement[]): void {
    this.#atomically(() => {
      const phase = this.#bootstrap.phase;
      if (phase === 'none') {
        this.#m.confirm(acks);
        this.#fastForward(acks);
        return;
      }
      for (const ack of acks) {
        const pending = this.#wal.pendingById(ack.id);
        if (pending === undefined) continue;
        // Marks exist for the pages loaded so far, in either phase.
        if (this.#inSnapshot(pending, ack.seq)) continue;
        this.#wal.holdAcknowledged([ack]);
      }
      this.#bootstrap.settle(this.#cursor);
    });
  }

  /**
   * Seqs are gap-free per tenant: acks for every seq right after the cursor
   * mean nobody else wrote in between, so the cursor moves over them as a pull
   * bringing them back would, without the pull (they are confirmed already).
   * Outside a bootstrap only: there, acks are held until the pull.
   */
  #fastForward(acks: readonly Acknowledgement[]): void {
    let cursor = this.#cursor;
    const seqs = acks
      .map((a) => a.seq)
      .filter((s) => s > cursor)
      .sort((a, b) => a - b);
    for (const s of seqs) {
      if (s === cursor + 1) cursor = s;
      else if (s > cursor + 1) break;
    }
    if (cursor === this.#cursor) return;
    this.#cursor = cursor;
    this.#wal.setMeta('cursor', String(cursor));
    this.#wal.compact(cursor);
  }

  get bootstrapPhase(): BootstrapPhase {
    return this.#bootstrap.phase;
  }

  /** A new device (cursor 0, never bootstrapped) or an interrupted bootstrap loads a snapshot first. */
  get needsSnapshot(): boolean {
    return this.#bootstrap.phase === 'loading' || (this.#cursor === 0 && !this.#bootstrap.everLoaded);
  }

  /** Where to continue paging an interrupted bootstrap; null to start with the first page. */
  get snapshotResumeToken(): string | null {
    return this.#bootstrap.phase === 'loading' ? this.#bootstrap.resumeToken : null;
  }

  /** Starts a bootstrap from the first snapshot page (new device, reset required, or a stale page token). */
  beginBootstrap(): void {
    this.#atomically(() => this.#bootstrap.begin());
    this.#records.invalidate();
    this.#seen.reload();
  }

  /**
   * Folds one snapshot page into confirmed state, atomically with its marks
   * and the token of the next page. After the last page the cursor moves to
   * the snapshot's seq; entities the snapshot no longer has are withdrawn.
   */
  applySnapshotPage(records: readonly EntityRecord[], seq: number, after: string | null, more: boolean): Reconciled {
    return this.#atomically(() => {
      const recs = records.map((r) => {
        this.#receive(r.hlc);
        const rec = recordFromJson(r);
        this.#records.put(rec);
        return rec;
      });
      this.#records.changed(recs);
      this.#bootstrap.page(records, seq, after);
      // A held ack this page's record already holds leaves the overlay now (else the app sees it twice).
      for (const h of this.#wal.held()) this.#inSnapshot(h.action, h.seq);
      const keys: [string, string][] = records.map((r) => [r.collection, r.id]);
      if (!more) {
        keys.push(...this.#bootstrap.finishLoading());
        this.#cursor = seq;
        this.#wal.setMeta('cursor', String(seq));
        this.#bootstrap.settle(seq);
      }
      this.#wal.setMeta('hlc_last', String(this.#wal.clock.last));
      return { changed: this.#m.materialized(keys), conflicts: [], duplicates: 0 };
    });
  }

  /** Pulled actions that the snapshot records do not hold yet; the others are settled without folding. */
  #notInSnapshot(actions: readonly StoredAction[]): StoredAction[] {
    return actions.filter((a) => !this.#inSnapshot(a, a.seq));
  }

  /**
   * Whether the snapshot record of the action's entity already holds it; if so
   * and it is ours, it leaves the pending set. Applied floors are left alone:
   * they must rise in clientSeq order, and the marks already stop a second fold.
   */
  #inSnapshot(a: Action, seq: number): boolean {
    const mark = this.#bootstrap.markOf(a.collection, a.entityId);
    if (mark === undefined || seq > mark) return false;
    this.#wal.markAcknowledged([{ id: a.id, seq }]); // a no-op unless it is ours and pending
    return true;
  }

  /** Server-vetted times advance the clock (no drift bound). */
  #receive(hlc: number): void {
    const r = this.#wal.clock.receive(hlc);
    if (!r.ok) throw new Error(r.message);
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
    // materialized() takes each entity once, however many of the actions name it.
    const views = this.#m.materialized(actions.map((a) => [a.collection, a.entityId] as const));
    // Reads fill the record cache too: a device that only captures (offline) must stay bounded.
    this.#records.trim(this.#maxCached);
    return views;
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
      const out = this.#wal.db.transaction(() => {
        const result = fn();
        this.#seen.flush(); // floors moved by fn commit with it
        return result;
      })();
      this.#records.trim(this.#maxCached);
      return out;
    } catch (err) {
      // The transaction rolled back: drop every in-memory copy that may be ahead of the file.
      this.#records.invalidate();
      this.#seen.reload();
      this.#wal.reloadCounters();
      this.#bootstrap.reload();
      this.#cursor = this.#storedCursor();
      throw err;
    }
  }
}
