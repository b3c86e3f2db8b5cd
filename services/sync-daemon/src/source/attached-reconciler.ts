/**
 * The reconciler, as the SQLite attach mode needs it: pulled creates of
 * tables whose keys SQLite mints are checked for id collisions in the same
 * transaction as the page, rejections queue their entities for write-back with
 * the WAL marks, and acknowledgements (our own writes, which the app already
 * has) queue nothing. Everything else is the plain Reconciler.
 */
import type { ConflictRecord, StoredAction } from '@ferry/contracts';
import type { Rejection, Acknowledgement } from '@ferry/domain';
import { Reconciler, type Reconciled, type ReconcilerOptions } from '../reconcile/reconciler.js';
import type { AttachLedger } from './attach-ledger.js';

export interface AttachedReconcilerHooks {
  readonly ledger: AttachLedger;
  /** Whether the collection is an attached table whose keys SQLite mints. */
  readonly mintedKeys: (collection: string) => boolean;
  /** Collisions found in a committed page. */
  readonly onCollisions: (conflicts: readonly ConflictRecord[]) => void;
}

export class AttachedReconciler extends Reconciler {
  readonly #options: ReconcilerOptions;
  readonly #hooks: AttachedReconcilerHooks;

  constructor(options: ReconcilerOptions, hooks: AttachedReconcilerHooks) {
    super(options);
    this.#options = options;
    this.#hooks = hooks;
  }

  override applyPulled(actions: readonly StoredAction[], next: number): Reconciled {
    const found: ConflictRecord[] = [];
    const result = this.#options.wal.db.transaction(() => {
      const applied = super.applyPulled(actions, next);
      found.push(...this.#checkCreates(actions));
      return applied;
    })();
    if (found.length > 0) {
      this.#hooks.ledger.rememberCollisions(found);
      this.#hooks.onCollisions(found);
    }
    return result;
  }

  override acknowledge(acks: readonly Acknowledgement[]): void {
    this.#hooks.ledger.withoutQueueing(() => super.acknowledge(acks));
  }

  override reject(rejections: readonly Rejection[]): Reconciled {
    return this.#options.wal.db.transaction(() => {
      const result = super.reject(rejections);
      this.#hooks.ledger.enqueue(result.changed.map((e) => [e.collection, e.id] as const));
      return result;
    })();
  }

  /**
   * A create from another client of an id this device already knows a
   * different first create of: two devices minted the same id for two rows.
   */
  #checkCreates(actions: readonly StoredAction[]): ConflictRecord[] {
    const { ledger, mintedKeys } = this.#hooks;
    const own = this.#options.wal.clientId;
    const out: ConflictRecord[] = [];
    for (const a of actions) {
      if (a.op !== 'create' || a.clientId === own || !mintedKeys(a.collection)) continue;
      const conflict = ledger.checkCreate(a, 'first', this.#options.now(), out);
      if (conflict !== null) out.push(conflict);
    }
    return out;
  }
}
