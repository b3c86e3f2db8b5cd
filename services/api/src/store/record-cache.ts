/**
 * The identity map of entity records: every record the store holds in memory
 * is here once, either dirty (folded past the `entities` table, waiting for a
 * checkpoint, never evicted), flushing (taken by a checkpoint that has not
 * committed yet, never evicted) or clean (equal to its row, kept in a bounded
 * LRU). A record can be dirty and flushing at once: changed again after a
 * checkpoint took it.
 */
import type { EntityRec } from '@ferry/domain';

export interface CacheEntry {
  readonly key: string;
  tenantId: number;
  rec: EntityRec;
  dirty: boolean;
  /** Taken by a checkpoint in flight: the record and the version it serialised (-1: not yet). */
  flushing: EntityRec | null;
  flushVersion: number;
}

/** What one part of a checkpoint wrote: each entry with the record and version it serialised. */
export interface Flush {
  readonly entries: CacheEntry[];
  readonly recs: EntityRec[];
  readonly versions: number[];
}

export class RecordCache {
  readonly #max: number;
  /** Every record held. */
  readonly #held = new Map<string, CacheEntry>();
  /** The clean ones, least recently used first. */
  readonly #clean = new Map<string, CacheEntry>();
  /** Dirty since the last checkpoint took them, in the order they became dirty. */
  #dirty: CacheEntry[] = [];

  constructor(maxClean: number) {
    this.#max = maxClean;
  }

  /** The record (dirty, flushing or clean), a clean one marked most recently used; undefined when not held. */
  get(key: string): EntityRec | undefined {
    const e = this.#held.get(key);
    if (e === undefined) return undefined;
    if (!e.dirty && e.flushing === null) {
      this.#clean.delete(key);
      this.#clean.set(key, e);
    }
    return e.rec;
  }

  /** Holds a record that equals its table row (or has none and is empty). */
  setClean(key: string, rec: EntityRec): void {
    if (this.#held.has(key)) throw new Error('record-cache: a held record cannot be replaced by a clean one');
    if (this.#max <= 0) return;
    const e: CacheEntry = { key, tenantId: 0, rec, dirty: false, flushing: null, flushVersion: 0 };
    this.#held.set(key, e);
    this.#clean.set(key, e);
    this.#evict();
  }

  /** Holds a record that is ahead of its table row until a checkpoint commits it. */
  setDirty(key: string, tenantId: number, rec: EntityRec): void {
    let e = this.#held.get(key);
    if (e === undefined) {
      e = { key, tenantId, rec, dirty: true, flushing: null, flushVersion: 0 };
      this.#held.set(key, e);
      this.#dirty.push(e);
      return;
    }
    e.rec = rec;
    e.tenantId = tenantId;
    if (e.dirty) return;
    e.dirty = true;
    this.#dirty.push(e);
    this.#clean.delete(key);
  }

  /**
   * Hands every dirty record to a checkpoint. They stay held (flushing) until
   * `flushed` says the part of the checkpoint that wrote them committed; the
   * checkpoint serialises each with `serialised`, as it is at that moment.
   */
  takeDirty(): CacheEntry[] {
    const entries = this.#dirty;
    this.#dirty = [];
    for (const e of entries) {
      e.dirty = false;
      e.flushing = e.rec;
      e.flushVersion = -1;
    }
    return entries;
  }

  /** A checkpoint serialised this entry's record: what it writes is the record at this version. */
  serialised(e: CacheEntry): void {
    e.flushing = e.rec;
    e.flushVersion = e.rec.version;
  }

  /** The part of a checkpoint that wrote `flush` committed: what was not changed since is clean now. */
  flushed(flush: Flush): void {
    const { entries, recs, versions } = flush;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i] as CacheEntry;
      if (this.#held.get(e.key) !== e || e.dirty || e.flushing !== recs[i] || e.flushVersion !== versions[i]) continue;
      e.flushing = null;
      if (this.#max > 0) this.#clean.set(e.key, e);
      else this.#held.delete(e.key);
    }
    this.#evict();
  }

  has(key: string): boolean {
    return this.#held.has(key);
  }

  /** Forgets everything: after a failed write, the store re-derives its records from the file. */
  clear(): void {
    this.#held.clear();
    this.#clean.clear();
    this.#dirty = [];
  }

  /** Forgets clean records only; dirty ones hold state the table does not have. */
  clearClean(): void {
    for (const key of this.#clean.keys()) this.#held.delete(key);
    this.#clean.clear();
  }

  /** Records changed since the last checkpoint took them. */
  get dirtySize(): number {
    return this.#dirty.length;
  }

  get size(): number {
    return this.#held.size;
  }

  #evict(): void {
    if (this.#clean.size <= this.#max) return;
    // One iterator for the whole sweep: restarting keys() after each delete rescans the deleted
    // slots at the front of the Map, which made evicting many records at once quadratic.
    for (const key of this.#clean.keys()) {
      if (this.#clean.size <= this.#max) return;
      this.#clean.delete(key);
      this.#held.delete(key);
    }
  }
}
