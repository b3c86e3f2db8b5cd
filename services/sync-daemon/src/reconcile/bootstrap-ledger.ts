/**
 * The persisted state of a snapshot bootstrap (docs/daemon.md, "Snapshot
 * bootstrap"): which phase it is in, where to resume paging after a crash,
 * and the per-entity marks that keep an action folded into a snapshot record
 * from being folded again while the daemon catches up from the snapshot's seq.
 * Every method runs inside the reconciler's transaction; the phase is cached in
 * memory and re-read after a rollback.
 */
import type Database from 'better-sqlite3';
import { ErrorCode, FerryError } from '@ferry/contracts';
import type { WalStore } from '../wal/wal-store.js';

export type BootstrapPhase = 'none' | 'loading' | 'catching-up';

const PHASE = 'bootstrap_phase';
const AFTER = 'bootstrap_after';
const SEQ = 'bootstrap_seq';
const MARKS_UNTIL = 'bootstrap_marks_until';
const WAL_FLOOR = 'bootstrap_wal_floor';
const DONE = 'bootstrapped';

export class BootstrapLedger {
  readonly #wal: WalStore;
  readonly #db: Database.Database;
  readonly #stmts;
  #phase: BootstrapPhase = 'none';
  #marksUntil = 0;
  #walFloor = 0;

  constructor(wal: WalStore) {
    this.#wal = wal;
    const db = (this.#db = wal.db);
    this.#stmts = {
      mark: db.prepare<[string, string, number]>(
        `INSERT INTO bootstrap_marks (collection, entity_id, seq) VALUES (?, ?, ?)
         ON CONFLICT (collection, entity_id) DO UPDATE SET seq = excluded.seq`,
      ),
      markOf: db.prepare<[string, string], { seq: number }>(
        'SELECT seq FROM bootstrap_marks WHERE collection = ? AND entity_id = ?',
      ),
      maxMark: db.prepare<[], { m: number | null }>('SELECT max(seq) AS m FROM bootstrap_marks'),
      unstale: db.prepare<[string, string]>('DELETE FROM bootstrap_stale WHERE collection = ? AND entity_id = ?'),
      stale: db.prepare<[], { collection: string; entity_id: string }>(
        'SELECT collection, entity_id FROM bootstrap_stale',
      ),
      deleteMeta: db.prepare<[string]>('DELETE FROM meta WHERE key = ?'),
    };
    this.reload();
  }

  get phase(): BootstrapPhase {
    return this.#phase;
  }

  /** Whether a bootstrap ever completed its pages on this data dir. */
  get everLoaded(): boolean {
    return this.#wal.getMeta(DONE) !== undefined;
  }

  /** The page token to continue a bootstrap interrupted mid-way; null for the first page. */
  get resumeToken(): string | null {
    return this.#wal.getMeta(AFTER) ?? null;
  }

  /**
   * Starts (or restarts) a bootstrap: confirmed state and applied floors are
   * dropped, because the snapshot replaces them; what the app was shown is
   * remembered, so entities the snapshot no longer has can be withdrawn.
   */
  begin(): void {
    this.#db.exec(`
      INSERT OR IGNORE INTO bootstrap_stale (collection, entity_id) SELECT collection, entity_id FROM entities;
      DELETE FROM entities;
      DELETE FROM applied_floor;
      DELETE FROM bootstrap_marks;
    `);
    this.#stmts.deleteMeta.run(AFTER);
    this.#stmts.deleteMeta.run(SEQ);
    // Our own actions up to here may already be inside the snapshot: marks stay until they are settled.
    this.#walFloor = this.#wal.lastClientSeq;
    this.#wal.setMeta(WAL_FLOOR, String(this.#walFloor));
    this.#wal.setMeta(PHASE, 'loading');
    this.#phase = 'loading';
  }

  /** One page committed: its records' marks, and where the next page starts. */
  page(records: readonly { collection: string; id: string; seq: number }[], seq: number, after: string | null): void {
    for (const r of records) {
      this.#stmts.mark.run(r.collection, r.id, r.seq);
      this.#stmts.unstale.run(r.collection, r.id);
    }
    this.#wal.setMeta(SEQ, String(seq));
    if (after === null) this.#stmts.deleteMeta.run(AFTER);
    else this.#wal.setMeta(AFTER, after);
  }

  /**
   * The last page is in: returns the entities held before that the snapshot
   * did not bring back (the app must be told), and switches to catching up.
   */
  finishLoading(): [string, string][] {
    const stale = this.#stmts.stale.all().map((r): [string, string] => [r.collection, r.entity_id]);
    this.#db.exec('DELETE FROM bootstrap_stale');
    this.#stmts.deleteMeta.run(AFTER);
    this.#marksUntil = this.#stmts.maxMark.get()?.m ?? 0;
    this.#wal.setMeta(MARKS_UNTIL, String(this.#marksUntil));
    this.#wal.setMeta(DONE, '1');
    this.#wal.setMeta(PHASE, 'catching-up');
    this.#phase = 'catching-up';
    return stale;
  }

  /** The seq an entity's snapshot record was served at (pages loaded so far), during a bootstrap. */
  markOf(collection: string, id: string): number | undefined {
    if (this.#phase === 'none') return undefined;
    return this.#stmts.markOf.get(collection, id)?.seq;
  }

  /**
   * Marks are needed until the cursor has passed every one of them, every
   * action of ours that the snapshot may hold has been settled, and every held
   * acknowledgement has been pulled back (later acks must not fold before it).
   */
  settle(cursor: number): void {
    if (this.#phase !== 'catching-up') return;
    if (cursor < this.#marksUntil || this.#wal.hasPendingAtOrBelow(this.#walFloor) || this.#wal.hasHeld()) return;
    this.#db.exec('DELETE FROM bootstrap_marks');
    for (const key of [PHASE, SEQ, MARKS_UNTIL, WAL_FLOOR]) this.#stmts.deleteMeta.run(key);
    this.#phase = 'none';
  }

  /** Re-reads the cached phase (at start, and after a rolled-back transaction). */
  reload(): void {
    const phase = this.#wal.getMeta(PHASE);
    if (phase !== undefined && phase !== 'loading' && phase !== 'catching-up') {
      // Guessing a phase would fold snapshot actions twice or drop marks: refuse, naming the row.
      throw new FerryError(ErrorCode.Internal, `stored row is not valid: meta ${PHASE}: unknown phase "${phase}"`);
    }
    this.#phase = phase ?? 'none';
    this.#marksUntil = this.#wal.metaNumber(MARKS_UNTIL, 0);
    this.#walFloor = this.#wal.metaNumber(WAL_FLOOR, 0);
  }
}
