/**
 * The API store contract: the per-tenant action log with its gap-free seq, the
 * per-client clientSeq high-water marks, the entity records and the retention
 * cursors. Every implementation must pass test/store-conformance.ts; nothing
 * above this interface knows SQL.
 */
import type { Action, ClientId, PushResult, TenantId } from '@ferry/contracts';
import type { RawActions } from '../push/raw-actions.js';

/** JSON text of a `StoredAction` exactly as it goes on the wire (passed through, never re-serialised). */
export type StoredActionJson = string & { readonly __storedActionJson: true };
/** JSON text of an `EntityRecord` (contracts `entityRecordSchema`), passed through the same way. */
export type EntityRecordJson = string & { readonly __entityRecordJson: true };

export interface PushInput {
  /** The pushing client; every action carries it (checked before the store is called). */
  readonly clientId: ClientId;
  /** Validated actions in the order the client made them. */
  readonly actions: readonly Action[];
  /** Server time in epoch millis: marks the client as seen and stamps rejections. */
  readonly now: number;
  /**
   * The actions' JSON text as received, where it reads the same as the parsed
   * action in every parser (push/raw-actions.ts); the store may keep that text
   * instead of serialising the action again.
   */
  readonly raw?: RawActions | null | undefined;
}

export interface PushOutcome {
  /** One result per input action, in input order. */
  readonly results: PushResult[];
  /** The tenant's head seq after the batch committed. */
  readonly headSeq: number;
  /** How many actions this batch appended to the log (0 for a pure retry). */
  readonly stored: number;
}

export interface PullInput {
  readonly since: number;
  /** Already capped by the caller to `maxPullLimit`. */
  readonly limit: number;
  /** When given, `since` becomes this client's retention cursor. */
  readonly clientId?: ClientId | undefined;
  readonly now: number;
  /** Stop adding actions once the page holds this many bytes (at least one action is returned). */
  readonly maxBytes: number;
}

export interface PullPage {
  readonly actions: StoredActionJson[];
  readonly next: number;
  readonly more: boolean;
  /** `since` is below the retention horizon (or beyond the head): bootstrap from a snapshot. */
  readonly resetRequired: boolean;
  readonly headSeq: number;
}

/** Where a snapshot stands: the head seq of its first page and the last key served. */
export interface SnapshotCursor {
  readonly seq: number;
  readonly collection: string;
  readonly id: string;
}

export interface SnapshotInput {
  /** Absent for the first page. */
  readonly after: SnapshotCursor | null;
  readonly limit: number;
  readonly maxBytes: number;
}

export interface SnapshotPage {
  readonly records: EntityRecordJson[];
  /** Head seq when the first page was served. */
  readonly seq: number;
  /** Cursor for the next page; null on the last one. */
  readonly after: SnapshotCursor | null;
  readonly more: boolean;
}

export interface PurgeInput {
  readonly now: number;
  /** Clients not seen within this window no longer hold the horizon back. */
  readonly windowMs: number;
}

export interface PurgeReport {
  readonly tenants: number;
  readonly actions: number;
  readonly tombstones: number;
  readonly rejections: number;
}

export interface TenantStats {
  readonly headSeq: number;
  /** Every seq at or below this has been purged from the log. */
  readonly purgedThrough: number;
  readonly actions: number;
  readonly entities: number;
}

export interface ApiStore {
  /**
   * Appends a batch in one transaction: all of it or none of it. Throws a
   * `FerryError` with code `client_seq_gap` (nothing stored) when an action
   * skips a clientSeq.
   */
  push(tenant: TenantId, input: PushInput): Promise<PushOutcome>;
  pull(tenant: TenantId, input: PullInput): Promise<PullPage>;
  snapshot(tenant: TenantId, input: SnapshotInput): Promise<SnapshotPage>;
  /** Purges log entries, tombstones and old rejections below each tenant's horizon. */
  purge(input: PurgeInput): Promise<PurgeReport>;
  stats(tenant: TenantId): Promise<TenantStats>;
  /**
   * Persists the entity records folded in memory since the last checkpoint,
   * with the watermark they are complete through. Never needed for
   * correctness by callers: snapshot, stats and purge see every acknowledged
   * action on their own, and a crash loses nothing (recovery refolds the log).
   */
  checkpoint(): Promise<void>;
  /** Checkpoints and closes. */
  close(): Promise<void>;
}
