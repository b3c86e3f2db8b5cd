/**
 * Reconciled state → the app's tables. One BEGIN IMMEDIATE transaction per
 * chunk of queued entities: it first drains the outbox into the WAL (so a
 * local write made in the meantime becomes pending and shows in the state
 * written back, never overwritten), then writes each entity's reconciled
 * state (only the columns that differ; a delete deletes the row), then removes
 * the outbox rows its own writes produced (no echo). Never blocks the app
 * longer than one chunk; never touches an entity two devices minted separately.
 */
import type Database from 'better-sqlite3';
import type { Logger } from 'pino';
import { ErrorCode, type EntityState, type JsonValue, type SyncEvent } from '@ferry/contracts';
import type { AttachLedger } from './attach-ledger.js';
import { OUTBOX, quoteId, type Attachment } from './sqlite-attach.js';
import type { OutboxCapture } from './sqlite-outbox-capture.js';
import type { TableSpec } from './sqlite-schema.js';
import { ValueError, decodeEntityId, sameValue, toBindValue, type SqliteValue } from './sqlite-values.js';

export interface SqliteWriteBackOptions {
  readonly app: Database.Database;
  readonly capture: OutboxCapture;
  readonly ledger: AttachLedger;
  /** The reconciled state the app must see (confirmed ⊕ pending). */
  readonly view: (collection: string, id: string) => EntityState | null;
  readonly logger: Logger;
  readonly emit: (event: SyncEvent) => void;
  readonly now: () => number;
  /** How long to wait for the app's write lock before trying again later. */
  readonly busyTimeoutMs?: number;
  /** Entities per transaction: bounds how long the app waits for its write lock. */
  readonly chunk?: number;
}

export type WriteBackOutcome = 'idle' | 'more' | 'busy';

type Plan =
  | { readonly kind: 'delete'; readonly spec: TableSpec; readonly key: SqliteValue[] }
  | {
      readonly kind: 'insert' | 'update';
      readonly spec: TableSpec;
      readonly key: SqliteValue[];
      readonly columns: readonly string[];
      readonly values: readonly SqliteValue[];
    };

interface TableStatements {
  readonly select: Database.Statement<SqliteValue[], unknown[]>;
  readonly remove: Database.Statement<SqliteValue[]>;
  readonly writes: Map<string, Database.Statement<SqliteValue[]>>;
}

export class SqliteWriteBack {
  readonly #o: SqliteWriteBackOptions;
  readonly #chunk: number;
  readonly #busyMs: number;
  #maxId: Database.Statement<[], { m: number | null }> | null = null;
  #dropEcho: Database.Statement<[number]> | null = null;
  #layout = new Map<string, TableSpec>();
  #statements = new Map<string, TableStatements>();
  /** Problems reported once (a collection without a table, a field without a column). */
  readonly #reported = new Set<string>();

  constructor(options: SqliteWriteBackOptions) {
    this.#o = options;
    this.#chunk = options.chunk ?? 500;
    this.#busyMs = options.busyTimeoutMs ?? 200;
  }

  use(attachment: Attachment): void {
    const { app } = this.#o;
    this.#maxId = app.prepare<[], { m: number | null }>(`SELECT max(id) AS m FROM ${quoteId(OUTBOX)}`);
    this.#dropEcho = app.prepare<[number]>(`DELETE FROM ${quoteId(OUTBOX)} WHERE id > ?`);
    this.#layout = new Map(attachment.layout.map((t) => [t.table, t]));
    this.#statements = new Map();
  }

  /**
   * Writes one chunk of the queue. Entities whose row already shows their state
   * are settled without the app's write lock (our own changes coming back from
   * the server are the usual case). 'busy' when the app held its write lock past
   * the timeout, or wrote faster than capture keeps up: draining a long backlog
   * under the lock would stall the app, so the write-back waits for a lull.
   */
  runOnce(): WriteBackOutcome {
    const { app, ledger, capture } = this.#o;
    const maxId = this.#maxId;
    const dropEcho = this.#dropEcho;
    if (maxId === null || dropEcho === null) return 'idle';
    const keys = ledger.queued(this.#chunk);
    if (keys.length === 0) return 'idle';
    const more = keys.length === this.#chunk ? 'more' : 'idle';
    if (keys.every(([collection, id]) => this.#plan(collection, id, false) === null)) {
      ledger.settle(keys);
      return more;
    }
    // Catch up outside the lock, so the drain inside it is short.
    for (let i = 0; i < 10 && capture.backlog() > capture.batchSize; i++) capture.captureBatch();
    if (capture.backlog() > capture.batchSize) return 'busy';
    app.pragma(`busy_timeout = ${this.#busyMs}`);
    app.pragma('synchronous = FULL');
    try {
      app.exec('BEGIN IMMEDIATE');
    } catch (err) {
      if (String((err as { code?: string }).code).startsWith('SQLITE_BUSY')) return 'busy';
      throw err;
    }
    try {
      // Everything the app committed before this point becomes pending first.
      capture.drain();
      const echoAbove = maxId.get()?.m ?? 0;
      for (const [collection, id] of keys) this.#apply(collection, id);
      if (!app.inTransaction) throw new Error('an app trigger rolled the write-back transaction back');
      dropEcho.run(echoAbove);
      app.exec('COMMIT');
    } catch (err) {
      if (app.inTransaction) app.exec('ROLLBACK');
      throw err;
    }
    ledger.settle(keys);
    return more;
  }

  /** What writing the entity's reconciled state into its row takes; null when nothing. */
  #plan(collection: string, id: string, report: boolean): Plan | null {
    const spec = this.#layout.get(collection);
    if (spec === undefined) {
      if (report) {
        this.#reportOnce(
          `collection:${collection}`,
          `remote changes to collection ${collection} stay in the daemon: the app's database has no attached table of that name`,
        );
      }
      return null;
    }
    const { ledger, view } = this.#o;
    if (ledger.collided(collection, id)) return null;
    let key: SqliteValue[];
    try {
      key = decodeEntityId(spec, id);
    } catch (err) {
      if (!(err instanceof ValueError)) throw err;
      if (report) this.#report(`${collection}/${id} cannot be written back: ${err.message}`);
      return null;
    }
    const row = this.#statementsOf(spec).select.get(...key);
    const state = view(collection, id);
    if (state === null || state.deleted) return row === undefined ? null : { kind: 'delete', spec, key };
    const keyNames = new Set(spec.pk.map((k) => k.name));
    const columns: string[] = [];
    const values: SqliteValue[] = [];
    spec.columns.forEach((c, i) => {
      if (keyNames.has(c.name) || !Object.hasOwn(state.fields, c.name)) return;
      const wanted = state.fields[c.name] as JsonValue;
      if (row !== undefined && sameValue(row[i] as SqliteValue, wanted)) return;
      columns.push(c.name);
      values.push(toBindValue(wanted));
    });
    if (report) this.#unknownFields(spec, state);
    if (row === undefined) return { kind: 'insert', spec, key, columns, values };
    return columns.length > 0 ? { kind: 'update', spec, key, columns, values } : null;
  }

  #apply(collection: string, id: string): void {
    const plan = this.#plan(collection, id, true);
    if (plan === null) return;
    const { spec, key } = plan;
    try {
      if (plan.kind === 'delete') this.#statementsOf(spec).remove.run(...key);
      else if (plan.kind === 'insert') this.#write(spec, 'insert', plan.columns).run(...key, ...plan.values);
      else this.#write(spec, 'update', plan.columns).run(...plan.values, ...key);
    } catch (err) {
      // A value better-sqlite3 cannot bind is this entity's problem, not the chunk's: report it.
      if (err instanceof RangeError || err instanceof TypeError) {
        this.#report(`${collection}/${id} cannot be written back: ${err.message}`);
        return;
      }
      const code = (err as { code?: string }).code;
      if (typeof code !== 'string' || !code.startsWith('SQLITE_')) throw err;
      if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_IOERR') || code === 'SQLITE_FULL') throw err;
      // A constraint of the app's schema refused the remote state (UNIQUE, NOT NULL, CHECK, STRICT
      // types …): only this statement was undone; the entity stays as the app has it.
      this.#report(`${collection}/${id} cannot be written back: ${(err as Error).message}`);
    }
  }

  #unknownFields(spec: TableSpec, state: EntityState): void {
    for (const field of Object.keys(state.fields)) {
      if (spec.columns.some((c) => c.name === field)) continue;
      this.#reportOnce(
        `field:${spec.table}.${field}`,
        `field ${field} of collection ${spec.table} stays in the daemon: table ${spec.table} has no such column`,
      );
    }
  }

  #statementsOf(spec: TableSpec): TableStatements {
    let s = this.#statements.get(spec.table);
    if (s === undefined) {
      const { app } = this.#o;
      const t = quoteId(spec.table);
      const where = spec.pk.map((k) => `${quoteId(k.name)} = ?`).join(' AND ');
      const cols = spec.columns.map((c) => quoteId(c.name)).join(', ');
      s = {
        select: app.prepare<SqliteValue[], unknown[]>(`SELECT ${cols} FROM ${t} WHERE ${where}`).raw().safeIntegers(),
        remove: app.prepare<SqliteValue[]>(`DELETE FROM ${t} WHERE ${where}`),
        writes: new Map(),
      };
      this.#statements.set(spec.table, s);
    }
    return s;
  }

  /** INSERT of key + columns, or UPDATE of columns by key; cached per column set. */
  #write(spec: TableSpec, kind: 'insert' | 'update', columns: readonly string[]): Database.Statement<SqliteValue[]> {
    const s = this.#statementsOf(spec);
    const signature = `${kind}:${JSON.stringify(columns)}`;
    let stmt = s.writes.get(signature);
    if (stmt === undefined) {
      const t = quoteId(spec.table);
      if (kind === 'insert') {
        const names = [...spec.pk.map((k) => k.name), ...columns].map(quoteId);
        stmt = this.#o.app.prepare<SqliteValue[]>(
          `INSERT INTO ${t} (${names.join(', ')}) VALUES (${names.map(() => '?').join(', ')})`,
        );
      } else {
        const where = spec.pk.map((k) => `${quoteId(k.name)} = ?`).join(' AND ');
        stmt = this.#o.app.prepare<SqliteValue[]>(
          `UPDATE ${t} SET ${columns.map((c) => `${quoteId(c)} = ?`).join(', ')} WHERE ${where}`,
        );
      }
      s.writes.set(signature, stmt);
    }
    return stmt;
  }

  #reportOnce(key: string, message: string): void {
    if (this.#reported.has(key)) return;
    this.#reported.add(key);
    this.#report(message);
  }

  #report(message: string): void {
    this.#o.logger.warn(message);
    this.#o.emit({ type: 'error', at: this.#o.now(), code: ErrorCode.Invalid, message });
  }
}
