/**
 * One statement for many keys: the keys are bound as parameters of a
 * `WITH k(…) AS (VALUES (?, …), …)` list, never spliced into SQL or JSON
 * text, so each key is compared exactly as a one-key statement compares it
 * (a JSON round trip would not keep a lone surrogate or a NUL as better-sqlite3
 * binds them). Statements are prepared for power-of-two sizes up to MAX_KEYS;
 * a chunk is padded by repeating its last key, which `IN k` or a join ignores.
 */
import type Database from 'better-sqlite3';

/** Keys per statement: 256 keys of up to 2 columns stay far below SQLite's parameter limit. */
export const MAX_KEYS = 256;

export class KeyedBatch<Row> {
  readonly #db: Database.Database;
  readonly #arity: number;
  readonly #sql: (keys: string) => string;
  readonly #bySize = new Map<number, Database.Statement<unknown[], Row>>();

  /** `sql` receives `VALUES (?, …), …` to use as `WITH k(<arity columns>) AS (<it>) …`, reading the keys from `k`. */
  constructor(db: Database.Database, arity: number, sql: (withKeys: string) => string) {
    this.#db = db;
    this.#arity = arity;
    this.#sql = sql;
  }

  /** Every row the statement returns for these keys, chunk by chunk. */
  *rows(keys: readonly (readonly unknown[])[]): Generator<Row> {
    for (let from = 0; from < keys.length; from += MAX_KEYS) {
      const chunk = keys.slice(from, from + MAX_KEYS);
      let size = 1;
      while (size < chunk.length) size *= 2;
      const params: unknown[] = [];
      for (let i = 0; i < size; i++) {
        const key = chunk[Math.min(i, chunk.length - 1)] as readonly unknown[];
        for (let c = 0; c < this.#arity; c++) params.push(key[c]);
      }
      // all(), not iterate(): the caller may run other statements between rows.
      yield* this.#statement(size).all(...params);
    }
  }

  #statement(size: number): Database.Statement<unknown[], Row> {
    let stmt = this.#bySize.get(size);
    if (stmt === undefined) {
      const tuple = `(${Array.from({ length: this.#arity }, () => '?').join(', ')})`;
      const values = Array.from({ length: size }, () => tuple).join(', ');
      stmt = this.#db.prepare<unknown[], Row>(this.#sql(`VALUES ${values}`));
      this.#bySize.set(size, stmt);
    }
    return stmt;
  }
}
