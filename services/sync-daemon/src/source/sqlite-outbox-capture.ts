/**
 * Outbox → WAL: reads `_ferry_outbox` rows past the watermark, turns each into
 * a ChangeEvent (columns → fields, key → entity id), and appends them to the
 * WAL in one transaction that also moves the watermark, so a crash can neither
 * lose a row nor capture it twice. Outbox rows are deleted only later, and
 * never the highest captured one (it keeps the outbox's ids growing). A row
 * that cannot become a valid change is dead-lettered with the reason.
 */
import type Database from 'better-sqlite3';
import {
  ErrorCode,
  type Action,
  type ChangeEvent,
  type ConflictRecord,
  type ErrorCode as ErrorCodeType,
} from '@ferry/contracts';
import type { CaptureOptions } from '../capture/bus-capture.js';
import { DEFAULT_CHANGE_LIMITS, type ChangeLimits } from '../capture/validate-change.js';
import type { AttachLedger } from './attach-ledger.js';
import { META, OUTBOX, quoteId, type Attachment } from './sqlite-attach.js';
import type { TableSpec } from './sqlite-schema.js';
import { ValueError, encodeEntityId, parseQuotedList, toJsonValue } from './sqlite-values.js';

export interface OutboxCaptureOptions extends CaptureOptions {
  /** The daemon's connection to the app's file. */
  readonly app: Database.Database;
  readonly ledger: AttachLedger;
}

/** As read: the columns are declared TEXT, but a row inserted by hand can hold any value (a BLOB …). */
interface OutboxRow {
  id: number;
  tbl: unknown;
  op: unknown;
  pk: unknown;
  data: unknown;
}

/** A row whose every column has the type the triggers write. */
interface TextRow extends OutboxRow {
  tbl: string;
  op: string;
  pk: string;
  data: string | null;
}

interface Letter {
  readonly ref: string;
  readonly code: ErrorCodeType;
  readonly reason: string;
  readonly payload: string;
}

/** A decoded change plus what the minted-key check needs. */
interface Draft {
  readonly event: ChangeEvent;
  readonly spec: TableSpec;
}

export class OutboxCapture {
  readonly #o: OutboxCaptureOptions;
  readonly #limits: ChangeLimits;
  readonly #maxBatch: number;
  #read: Database.Statement<[number, number], OutboxRow> | null = null;
  #maxId: Database.Statement<[], { m: number | null }> | null = null;
  #attachment: Attachment | null = null;
  #layout = new Map<string, TableSpec>();
  #watermark = 0;
  #cleanedThrough = 0;
  #lastCleanupAt = 0;

  constructor(options: OutboxCaptureOptions) {
    this.#o = options;
    this.#limits = options.limits ?? DEFAULT_CHANGE_LIMITS;
    this.#maxBatch = options.maxBatch ?? 1000;
  }

  /** Rows per captureBatch(). */
  get batchSize(): number {
    return this.#maxBatch;
  }

  /** Outbox rows the app has committed that are not captured yet (about; ids may have gaps). */
  backlog(): number {
    const max = this.#maxId?.get()?.m ?? 0;
    return Math.max(0, max - this.#watermark);
  }

  /** The highest outbox row whose change is in the WAL. */
  get watermark(): number {
    return this.#watermark;
  }

  /** Decodes rows with this attachment's layout from now on (after attach or re-install). */
  use(attachment: Attachment): void {
    const { ledger, logger, emit, now } = this.#o;
    const { app } = this.#o;
    // Prepared here, not in the constructor: the outbox may not exist before the first attach.
    this.#read = app.prepare<[number, number], OutboxRow>(
      `SELECT id, tbl, op, pk, data FROM ${quoteId(OUTBOX)} WHERE id > ? ORDER BY id LIMIT ?`,
    );
    this.#maxId = app.prepare<[], { m: number | null }>(`SELECT max(id) AS m FROM ${quoteId(OUTBOX)}`);
    this.#attachment = attachment;
    this.#layout = new Map(attachment.layout.map((t) => [t.table, t]));
    this.#watermark = ledger.watermark(attachment.attachId);
    const max = this.#maxId.get()?.m ?? 0;
    if (max < this.#watermark) {
      // Only Ferry deletes outbox rows, and never the highest captured one: someone else did.
      const message = `${OUTBOX}: highest row ${max} is below the captured watermark ${this.#watermark}; the outbox was modified outside Ferry, capture restarts from row ${max}`;
      logger.error({ max, watermark: this.#watermark }, message);
      emit({ type: 'error', at: now(), code: ErrorCode.Internal, message });
      this.#o.wal.db.transaction(() => ledger.setWatermark(attachment.attachId, max))();
      this.#watermark = max;
    }
    this.#cleanedThrough = 0;
  }

  /** Captures everything in the outbox (used under the app's write lock, before a write-back). */
  drain(): number {
    let total = 0;
    for (;;) {
      const n = this.captureBatch();
      total += n;
      if (n < this.#maxBatch) return total;
    }
  }

  /** Captures up to one batch of outbox rows; returns how many rows it consumed. */
  captureBatch(): number {
    const attachment = this.#attachment;
    if (attachment === null || this.#read === null) return 0;
    const rows = this.#read.all(this.#watermark, this.#maxBatch);
    if (rows.length === 0) return 0;
    const last = (rows[rows.length - 1] as OutboxRow).id;
    const drafts: Draft[] = [];
    const letters: Letter[] = [];
    for (const row of rows) {
      const verdict = this.#decode(row);
      if ('reason' in verdict) letters.push(verdict);
      else drafts.push(verdict);
    }
    const { wal, ledger, now, emit, logger } = this.#o;
    const ownClient = wal.clientId;
    const conflicts: ConflictRecord[] = [];
    let appended: Action[];
    try {
      // Fsynced: the outbox rows it covers are deleted once it has committed.
      appended = wal.durably(() => {
        for (const l of letters) {
          wal.deadLetter({ sourceRef: l.ref, code: l.code, reason: l.reason, payload: l.payload.slice(0, 4096) });
        }
        const events = drafts.map((d) => this.#mintCheck(d, ownClient));
        const result = wal.appendMany(events).appended;
        result.forEach((action, i) => {
          const draft = drafts[i] as Draft;
          if (!draft.spec.mintedKeys || action.op !== 'create') return;
          const conflict = this.#recordCreate(action, conflicts);
          if (conflict !== null) conflicts.push(conflict);
        });
        ledger.setWatermark(attachment.attachId, last);
        return result;
      });
    } catch (err) {
      // Rolled back: the WAL's counters must not run ahead of the file; the rows stay for the next try.
      wal.reloadCounters();
      throw err;
    }
    this.#watermark = last;
    ledger.rememberCollisions(conflicts);
    const at = now();
    for (const l of letters) {
      logger.warn({ sourceRef: l.ref, code: l.code, reason: l.reason }, 'outbox row dead-lettered');
      emit({ type: 'dead-lettered', at, code: l.code, reason: l.reason, sourceRef: l.ref });
    }
    for (const a of appended) {
      emit({ type: 'capture', at, actionId: a.id, collection: a.collection, entityId: a.entityId, op: a.op });
    }
    for (const conflict of conflicts) {
      logger.warn({ conflict }, 'id collision');
      emit({ type: 'conflict', at, conflict });
    }
    if (appended.length > 0) this.#o.onAppended?.(appended);
    return rows.length;
  }

  /**
   * Deletes captured outbox rows, except the highest (rowids must keep
   * growing). Never waits for the app's write lock: when the app is busy it
   * simply tries again later, so it can never slow the app down.
   */
  cleanup(force = false): void {
    const through = this.#watermark;
    if (through <= this.#cleanedThrough) return;
    const now = this.#o.now();
    if (!force && through - this.#cleanedThrough < 4096 && now - this.#lastCleanupAt < 500) return;
    const { app } = this.#o;
    app.pragma('busy_timeout = 0');
    app.pragma('synchronous = NORMAL');
    try {
      app
        .transaction(() => {
          app.prepare(`DELETE FROM ${quoteId(OUTBOX)} WHERE id < ?`).run(through);
          app
            .prepare(
              `INSERT INTO ${quoteId(META)} (key, value) VALUES ('captured_through', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
            )
            .run(String(through));
        })
        .immediate();
      this.#cleanedThrough = through;
      this.#lastCleanupAt = now;
    } catch (err) {
      // SQLITE_BUSY (or a variant): the app holds its write lock; clean next time.
      if (!String((err as { code?: string }).code).startsWith('SQLITE_BUSY')) throw err;
    } finally {
      app.pragma('synchronous = FULL');
    }
  }

  #decode(raw: OutboxRow): Draft | Letter {
    const ref = `outbox:${raw.id}`;
    const letter = (code: ErrorCodeType, reason: string): Letter => ({
      ref,
      code,
      reason: `${OUTBOX} row ${raw.id} (table ${describeValue(raw.tbl)}, ${describeValue(raw.op)}): ${reason}`,
      payload: JSON.stringify(raw, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)),
    });
    const bad = wrongColumns(raw);
    if (bad.length > 0) return letter(ErrorCode.Invalid, `${bad.join(', ')}: not what the capture triggers write`);
    const row = raw as TextRow;
    const spec = this.#layout.get(row.tbl);
    if (spec === undefined) return letter(ErrorCode.Invalid, 'the table is not in the installed layout');
    let event: ChangeEvent;
    try {
      const key = parseQuotedList(row.pk);
      if (key.length !== spec.pk.length || key.some((v) => v === undefined)) {
        throw new ValueError(`key "${row.pk.slice(0, 80)}" does not match the ${spec.pk.length} key column(s)`);
      }
      const id = encodeEntityId(spec, key as Exclude<(typeof key)[number], undefined>[]);
      if (row.op === 'd') {
        event = { collection: row.tbl, id, op: 'delete' } as ChangeEvent;
      } else {
        const values = parseQuotedList(row.data ?? '');
        if (values.length !== spec.columns.length) {
          throw new ValueError(`${values.length} values for ${spec.columns.length} columns`);
        }
        const fields: Record<string, unknown> = {};
        values.forEach((v, i) => {
          if (v === undefined) return;
          const column = spec.columns[i]?.name as string;
          try {
            fields[column] = toJsonValue(v);
          } catch (err) {
            throw new ValueError(`column ${column}: ${(err as Error).message}`);
          }
        });
        if (row.op === 'i') event = { collection: row.tbl, id, op: 'create', fields } as ChangeEvent;
        else if (row.op === 'u' && Object.keys(fields).length > 0)
          event = { collection: row.tbl, id, op: 'update', fields } as ChangeEvent;
        else throw new ValueError(row.op === 'u' ? 'an update without changed columns' : `unknown op "${row.op}"`);
      }
    } catch (err) {
      if (err instanceof ValueError) return letter(ErrorCode.Invalid, err.message);
      throw err;
    }
    // The shape is right by construction (names and ids were checked at attach and encoding);
    // what remains are the limits the server enforces, so nothing it would refuse is queued.
    const refused = this.#checkLimits(event);
    if (refused !== null) return letter(refused.code, refused.reason);
    return { event, spec };
  }

  /** The bus's (and the server's) limits, without re-parsing an event built here. */
  #checkLimits(event: ChangeEvent): { code: ErrorCodeType; reason: string } | null {
    const known = this.#o.knownCollections ?? null;
    if (known !== null && !known.has(event.collection)) {
      return { code: ErrorCode.Invalid, reason: `collection: "${event.collection}" is not configured` };
    }
    const fields = event.fields;
    if (fields === undefined) return null;
    const { maxFieldsPerAction, maxFieldValueBytes, maxEventBytes } = this.#limits;
    const names = Object.keys(fields);
    if (names.length > maxFieldsPerAction) {
      return { code: ErrorCode.TooLarge, reason: `fields: ${names.length} fields, the limit is ${maxFieldsPerAction}` };
    }
    let total = 128 + event.id.length * 6;
    for (const name of names) {
      const v = fields[name];
      // Worst case for a string: every character escaped as \uXXXX. Measured exactly only near the limit.
      let bytes = typeof v === 'string' ? v.length * 6 + 2 : 64;
      if (bytes > maxFieldValueBytes / 4) bytes = Buffer.byteLength(JSON.stringify(v));
      if (bytes > maxFieldValueBytes) {
        return {
          code: ErrorCode.TooLarge,
          reason: `fields.${name}: ${bytes} bytes, the limit is ${maxFieldValueBytes}`,
        };
      }
      total += bytes + name.length * 6 + 4;
    }
    if (total > maxEventBytes) {
      const exact = Buffer.byteLength(JSON.stringify(event));
      if (exact > maxEventBytes) {
        return { code: ErrorCode.TooLarge, reason: `(root): ${exact} bytes, the limit is ${maxEventBytes}` };
      }
    }
    return null;
  }

  /**
   * An insert into a table whose keys SQLite mints, of a row another device
   * created and this app has already been shown, is the app replacing that row
   * (INSERT OR REPLACE): an update, not a second create of the id.
   */
  #mintCheck(draft: Draft, ownClient: string): ChangeEvent {
    const e = draft.event;
    if (!draft.spec.mintedKeys || e.op !== 'create') return e;
    const creator = this.#o.ledger.creator(e.collection, e.id);
    if (creator !== undefined && creator.clientId !== ownClient && creator.written) return { ...e, op: 'update' };
    return e;
  }

  /** Notes our create of a minted id; a collision when another device created it first with another row. */
  #recordCreate(action: Action, found: readonly ConflictRecord[]): ConflictRecord | null {
    return this.#o.ledger.checkCreate(action, 'this', this.#o.now(), found);
  }
}

/** The columns of an outbox row that do not hold the type the triggers write (text; data text or null). */
function wrongColumns(row: OutboxRow): string[] {
  const bad: string[] = [];
  if (typeof row.tbl !== 'string') bad.push(`tbl is ${typeOf(row.tbl)}`);
  if (typeof row.op !== 'string') bad.push(`op is ${typeOf(row.op)}`);
  if (typeof row.pk !== 'string') bad.push(`pk is ${typeOf(row.pk)}`);
  if (row.data !== null && typeof row.data !== 'string') bad.push(`data is ${typeOf(row.data)}`);
  return bad;
}

const typeOf = (v: unknown): string =>
  v === null ? 'NULL' : Buffer.isBuffer(v) ? 'a BLOB' : typeof v === 'string' ? 'TEXT' : `a ${typeof v}`;

const describeValue = (v: unknown): string => (typeof v === 'string' ? v : typeOf(v));
