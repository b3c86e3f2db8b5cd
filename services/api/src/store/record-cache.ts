/**
 * The identity map of entity records: every record the store holds in memory
 * is here once, either dirty (folded past the `entities` table, waiting for a
 * checkpoint, never evicted) or clean (equal to its row, kept in a bounded LRU).
 */
import type { EntityRec } from '@ferry/domain';

export interface DirtyRecord {
  readonly tenantId: number;
  readonly rec: EntityRec;
}

export class RecordCache {
  readonly #max: number;
  /** Clean records; Map iterates in insertion order, so the first key is the least recently used. */
  readonly #clean = new Map<string, EntityRec>();
  readonly #dirty = new Map<string, DirtyRecord>();

  constructor(maxClean: number) {
    this.#max = maxClean;
  }

  /** The record (dirty or clean), a clean one marked most recently used; undefined when not held. */
  get(key: string): EntityRec | undefined {
    const dirty = this.#dirty.get(key);
    if (dirty !== undefined) return dirty.rec;
    const rec = this.#clean.get(key);
    if (rec !== undefined) {
      this.#clean.delete(key);
      this.#clean.set(key, rec);
    }
    return rec;
  }

  /** Holds a record that equals its table row (or has none and is empty). */
  setClean(key: string, rec: EntityRec): void {
    if (this.#dirty.has(key)) throw new Error('record-cache: a dirty record cannot be replaced by a clean one');
    this.#clean.delete(key);
    if (this.#max <= 0) return;
    this.#clean.set(key, rec);
    this.#evict();
  }

  /** Holds a record that is ahead of its table row until the next checkpoint. */
  setDirty(key: string, tenantId: number, rec: EntityRec): void {
    this.#clean.delete(key);
    this.#dirty.set(key, { tenantId, rec });
  }

  /** The dirty records, in the order they first became dirty since the last checkpoint. */
  dirtyEntries(): IterableIterator<[string, DirtyRecord]> {
    return this.#dirty.entries();
  }

  /** After a checkpoint committed: the given records equal their rows now. */
  markClean(keys: Iterable<string>): void {
    for (const key of keys) {
      const dirty = this.#dirty.get(key);
      if (dirty === undefined) continue;
      this.#dirty.delete(key);
      if (this.#max > 0) this.#clean.set(key, dirty.rec);
    }
    this.#evict();
  }

  /** Drops one tenant's records, dirty ones included (recovery re-derives them from the log). */
  dropTenant(tenantId: number): void {
    const prefix = `${tenantId}\u0000`;
    for (const key of this.#clean.keys()) if (key.startsWith(prefix)) this.#clean.delete(key);
    for (const [key, d] of this.#dirty) if (d.tenantId === tenantId) this.#dirty.delete(key);
  }

  /** Forgets clean records only; dirty ones hold state the table does not have. */
  clearClean(): void {
    this.#clean.clear();
  }

  get dirtySize(): number {
    return this.#dirty.size;
  }

  get size(): number {
    return this.#clean.size + this.#dirty.size;
  }

  #evict(): void {
    if (this.#clean.size <= this.#max) return;
    // One iterator for the whole sweep: restarting keys() after each delete rescans the deleted
    // slots at the front of the Map, which made evicting many records at once quadratic.
    for (const key of this.#clean.keys()) {
      if (this.#clean.size <= this.#max) return;
      this.#clean.delete(key);
    }
  }
}
