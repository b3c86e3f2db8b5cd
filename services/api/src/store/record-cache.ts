/**
 * A bounded LRU of committed entity records, so an update of a hot entity
 * skips the SELECT, JSON.parse and recordFromJson. It only ever holds state
 * that is committed: a push that fails evicts every record it touched.
 */
import type { EntityRec } from '@ferry/domain';

export class RecordCache {
  readonly #max: number;
  readonly #map = new Map<string, EntityRec>();

  constructor(max: number) {
    this.#max = max;
  }

  /** The record, marked most recently used; undefined when not cached. */
  get(key: string): EntityRec | undefined {
    const rec = this.#map.get(key);
    if (rec !== undefined) {
      this.#map.delete(key);
      this.#map.set(key, rec);
    }
    return rec;
  }

  set(key: string, rec: EntityRec): void {
    if (this.#max <= 0) return;
    this.#map.delete(key);
    this.#map.set(key, rec);
    if (this.#map.size > this.#max) {
      // Map iterates in insertion order: the first key is the least recently used.
      const oldest = this.#map.keys().next();
      if (oldest.done !== true) this.#map.delete(oldest.value);
    }
  }

  delete(key: string): void {
    this.#map.delete(key);
  }

  clear(): void {
    this.#map.clear();
  }

  get size(): number {
    return this.#map.size;
  }
}
