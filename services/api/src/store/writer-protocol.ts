/**
 * Messages between SqliteStore (main thread) and its writer thread
 * (sqlite-writer.ts). The store decides everything; the writer only applies
 * write-sets, in the order it receives them, and answers each one once its
 * transaction has committed. Plain arrays of strings and numbers only: they
 * cross the thread boundary by structured clone.
 */

/** One push batch, decided by the store: log rows, rejections and the client's high-water mark. */
export interface PushWrite {
  readonly op: 'push';
  readonly n: number;
  readonly tenantId: number;
  /** The tenant's name when its row must be inserted first (its first write since the store opened it). */
  readonly newTenant: string | null;
  readonly clientId: string;
  /** The client's highest settled clientSeq after this batch. */
  readonly high: number;
  readonly now: number;
  /** Seq of the first row; the rows take consecutive seqs, and the tenant's head becomes the last one. */
  readonly firstSeq: number;
  /**
   * Per row (transferred): clientSeq, start, end. A row with start >= 0 is
   * the action's text in `bytes` from start up to (not including) its closing
   * brace at end, then `,"seq":<seq>}`; any other row is the next of `texts`.
   */
  readonly rows: Float64Array;
  /** The request's bytes (transferred), when rows are taken from them. */
  readonly bytes: ArrayBuffer | null;
  /** The stored JSON of the rows not taken from `bytes` (the action with its seq), in row order. */
  readonly texts: string[];
  /** Rejected actions as (clientSeq, action id, reason) triples, flattened. */
  readonly rejections: (string | number)[];
}

/** Entity records and the watermarks they are complete through. */
export interface CheckpointWrite {
  readonly op: 'checkpoint';
  readonly n: number;
  /** Per record (transferred): tenant id, seq, deleted (0/1), end of its row text in `json`. */
  readonly meta: Float64Array;
  readonly collections: string[];
  readonly entityIds: string[];
  /** The records' row texts, UTF-8, one after another (transferred). */
  readonly json: ArrayBuffer;
  /** (tenant id, records_through) pairs, flattened. */
  readonly watermarks: number[];
}

export interface CursorWrite {
  readonly op: 'cursor';
  readonly n: number;
  readonly tenantId: number;
  readonly clientId: string;
  readonly cursor: number;
  readonly now: number;
}

export interface PurgeWrite {
  readonly op: 'purge';
  readonly n: number;
  readonly now: number;
  readonly windowMs: number;
  readonly chunk: number;
}

/** Leaves the failed state (after the store re-read what is committed). */
export interface ResetWrite {
  readonly op: 'reset';
  readonly n: number;
}

export interface CloseWrite {
  readonly op: 'close';
  readonly n: number;
}

export type WriterRequest = PushWrite | CheckpointWrite | CursorWrite | PurgeWrite | ResetWrite | CloseWrite;

export interface PurgeResult {
  readonly tenants: number;
  readonly actions: number;
  readonly tombstones: number;
  readonly rejections: number;
}

export type WriterReply =
  | { readonly n: number; readonly ok: true; readonly purge?: PurgeResult }
  | {
      readonly n: number;
      readonly ok: false;
      /** SQLite's error code when there is one (SQLITE_FULL, …). */
      readonly code: string | null;
      readonly message: string;
    };

export interface WriterData {
  readonly path: string;
  /** For tests: wait this long before each WAL sync, so that a commit not yet acknowledged can be observed. */
  readonly syncDelayMs?: number;
}
