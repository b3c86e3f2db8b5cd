/**
 * Where the materializer keeps its state, as interfaces so the algorithm stays
 * here, pure, while a daemon keeps records and pending actions in SQLite. The
 * in-memory implementations are the defaults (tests, embedders, benchmarks).
 *
 * Contract for adapters: `RecordStore.get` returns the same object for the
 * same key until the caller is done with a batch (an identity map), because
 * records are updated in place; `put` receives each new record; `changed`
 * (optional) receives, once per call, every record that was created or
 * changed, so a persistent adapter can write them back. The batched forms
 * (`prefetch`, `forEntities`, `removeMany`) are optional too: a store whose
 * every call costs a query answers a whole batch with one; their results must
 * equal the single forms'.
 */
import type { Action } from '@ferry/contracts';
import { ClientSeqSet } from './client-seq-set.js';
import type { EntityRec } from './entity-record.js';
import { entityKey } from './oracle.js';

/** An entity: its collection and id (`entityKey` of oracle.ts makes a map key of them). */
export type EntityKey = readonly [collection: string, id: string];

export interface RecordStore {
  get(collection: string, id: string): EntityRec | undefined;
  /** Reads these records ahead of the `get`s that follow, in one go; `get` still answers each. */
  prefetch?(keys: readonly EntityKey[]): void;
  /** A record that did not exist before. */
  put(rec: EntityRec): void;
  /** Records created or changed by one materializer call. */
  changed?(recs: readonly EntityRec[]): void;
  /** Every stored key, for whole-state reads (`Materializer.entities`). */
  keys(collection?: string): Iterable<readonly [collection: string, id: string]>;
}

export interface PendingStore {
  readonly size: number;
  get(id: string): Action | undefined;
  /** Pending actions on one entity in the order they were added; undefined when none. */
  forEntity(collection: string, id: string): readonly Action[] | undefined;
  /** forEntity of many entities at once, by `entityKey`; an entity with none is absent. */
  forEntities?(keys: readonly EntityKey[]): ReadonlyMap<string, readonly Action[]>;
  add(action: Action): void;
  /** Takes the action out of the pending set, recording why (a WAL marks it so at once). */
  remove(id: string, outcome: PendingOutcome): Action | undefined;
  /** remove(id, {seq}) of many at once: the actions that were pending, by id. */
  removeMany?(acks: readonly { readonly id: string; readonly seq: number }[]): ReadonlyMap<string, Action>;
  keys(collection?: string): Iterable<readonly [collection: string, id: string]>;
  all(): Iterable<Action>;
}

export type PendingOutcome = { readonly seq: number } | { readonly reason: string };

/** (clientId, clientSeq) pairs folded into confirmed state. */
export interface SeenSet {
  has(clientId: string, clientSeq: number): boolean;
  /** Records the pair; false when it was there already. */
  add(clientId: string, clientSeq: number): boolean;
}

export class MemoryRecordStore implements RecordStore {
  readonly #byCollection = new Map<string, Map<string, EntityRec>>();
  #lastCollection = '';
  #last: Map<string, EntityRec> | undefined;

  get(collection: string, id: string): EntityRec | undefined {
    return this.#of(collection, false)?.get(id);
  }

  put(rec: EntityRec): void {
    (this.#of(rec.collection, true) as Map<string, EntityRec>).set(rec.id, rec);
  }

  *keys(collection?: string): Iterable<readonly [string, string]> {
    for (const [c, recs] of this.#byCollection) {
      if (collection !== undefined && c !== collection) continue;
      for (const id of recs.keys()) yield [c, id];
    }
  }

  #of(collection: string, create: boolean): Map<string, EntityRec> | undefined {
    // Consecutive actions usually share a collection: skip the outer lookup then.
    if (collection === this.#lastCollection && this.#last !== undefined) return this.#last;
    let recs = this.#byCollection.get(collection);
    if (recs === undefined) {
      if (!create) return undefined;
      this.#byCollection.set(collection, (recs = new Map<string, EntityRec>()));
    }
    this.#lastCollection = collection;
    this.#last = recs;
    return recs;
  }
}

export class MemoryPendingStore implements PendingStore {
  readonly #byId = new Map<string, Action>();
  readonly #byEntity = new Map<string, Map<string, Action[]>>();

  get size(): number {
    return this.#byId.size;
  }

  get(id: string): Action | undefined {
    return this.#byId.get(id);
  }

  forEntity(collection: string, id: string): readonly Action[] | undefined {
    return this.#byEntity.get(collection)?.get(id);
  }

  forEntities(keys: readonly EntityKey[]): ReadonlyMap<string, readonly Action[]> {
    const out = new Map<string, readonly Action[]>();
    for (const [collection, id] of keys) {
      const list = this.forEntity(collection, id);
      if (list !== undefined) out.set(entityKey(collection, id), list);
    }
    return out;
  }

  removeMany(acks: readonly { readonly id: string; readonly seq: number }[]): ReadonlyMap<string, Action> {
    const out = new Map<string, Action>();
    for (const ack of acks) {
      const a = this.remove(ack.id, { seq: ack.seq });
      if (a !== undefined) out.set(ack.id, a);
    }
    return out;
  }

  add(action: Action): void {
    this.#byId.set(action.id, action);
    let byId = this.#byEntity.get(action.collection);
    if (byId === undefined) this.#byEntity.set(action.collection, (byId = new Map<string, Action[]>()));
    const list = byId.get(action.entityId);
    if (list === undefined) byId.set(action.entityId, [action]);
    else list.push(action);
  }

  remove(id: string, _outcome: PendingOutcome): Action | undefined {
    const a = this.#byId.get(id);
    if (a === undefined) return undefined;
    this.#byId.delete(id);
    const byId = this.#byEntity.get(a.collection);
    const list = byId?.get(a.entityId);
    if (byId !== undefined && list !== undefined) {
      const rest = list.filter((p) => p.id !== id);
      if (rest.length === 0) byId.delete(a.entityId);
      else byId.set(a.entityId, rest);
      if (byId.size === 0) this.#byEntity.delete(a.collection);
    }
    return a;
  }

  *keys(collection?: string): Iterable<readonly [string, string]> {
    for (const [c, byId] of this.#byEntity) {
      if (collection !== undefined && c !== collection) continue;
      for (const id of byId.keys()) yield [c, id];
    }
  }

  all(): Iterable<Action> {
    return this.#byId.values();
  }
}

/** The default SeenSet: ClientSeqSet already has this shape. */
export const memorySeenSet = (): SeenSet => new ClientSeqSet();
