/**
 * The write-ahead log of intent: captured changes become actions with a
 * clientSeq and an hlc in one transaction per batch, are read back in pages in
 * clientSeq order, and are marked acknowledged or rejected. Never loads the
 * whole log; never edits or reorders an action.
 */
import Database from 'better-sqlite3';
import {
  ErrorCode,
  FerryError,
  actionSchema,
  decodeStored,
  seqSchema,
  type Action,
  type ChangeEvent,
  type ClientId,
} from '@ferry/contracts';
import { HlcClock, entityKey } from '@ferry/domain';
import { KeyedBatch } from './keyed-batch.js';
import { WAL_SCHEMA, WAL_SCHEMA_UPGRADABLE, WAL_SCHEMA_VERSION } from './schema.js';

export interface WalStoreOptions {
  /** The daemon's clientId; generated with `newId` and persisted when absent. */
  clientId?: string;
  /** uuidv7 generator for action ids (and the clientId). */
  newId: () => string;
  /** Wall clock, epoch millis. */
  now: () => number;
}

export interface AppendResult {
  readonly appended: Action[];
  /** Drafts skipped because their eventId was captured before. */
  readonly duplicates: number;
}

export interface DeadLetter {
  readonly sourceRef: string;
  readonly code: ErrorCode;
  readonly reason: string;
  readonly payload?: Uint8Array | string;
}

const PENDING = 0;
const ACKNOWLEDGED = 1;
const REJECTED = 2;

interface WalRow {
  body: string;
}

export class WalStore {
  readonly clientId: ClientId;
  readonly clock: HlcClock;
  readonly #db: Database.Database;
  readonly #newId: () => string;
  readonly #now: () => number;
  #nextClientSeq: number;
  /** Kept in memory: the overlay asks on every remote action whether anything is pending. */
  #pendingCount: number;
  #prunedAt = 0;
  /**
   * Actions as appended or last read, by clientSeq: each row is read back
   * several times (upload, overlay, acknowledgement), and parsing it again each
   * time is most of that cost. A row read is kept too: when the uploader runs
   * more than the cache behind the capture (a burst), the rows it sends are
   * the ones their acknowledgement reads next. Used only while the row read
   * holds the very text cached, so a damaged row is still caught; bounded,
   * oldest out first.
   */
  readonly #decoded = new Map<number, { body: string; action: Action }>();
  readonly #stmts;
  readonly #batched;

  private constructor(db: Database.Database, options: WalStoreOptions) {
    this.#db = db;
    this.#newId = options.newId;
    this.#now = options.now;
    const getMeta = db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE key = ?');
    const setMeta = db.prepare<[string, string]>(
      'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
    );
    const stored = getMeta.get('client_id')?.value;
    if (stored !== undefined && options.clientId !== undefined && stored !== options.clientId) {
      throw new Error(`dataDir holds the WAL of client ${stored}, but config names clientId ${options.clientId}`);
    }
    const clientId = stored ?? options.clientId ?? options.newId();
    if (stored === undefined) setMeta.run('client_id', clientId);
    this.clientId = clientId as ClientId;
    const metaNumber = (key: string, fallback: number) => readMetaNumber(getMeta.get(key)?.value, key, fallback);
    this.#nextClientSeq = metaNumber('next_client_seq', 1);
    // Resume strictly above every hlc issued before the restart (invariant C1).
    this.clock = new HlcClock({
      now: options.now,
      maxDriftMs: Number.POSITIVE_INFINITY,
      last: metaNumber('hlc_last', 0),
    });
    this.#stmts = {
      getMeta,
      setMeta,
      insert: db.prepare<[number, string, string | null, string, string, string, number]>(
        `INSERT INTO wal (client_seq, id, event_id, collection, entity_id, body, bytes)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
      ),
      keepEvents: db.prepare<[number, number]>(
        `INSERT OR IGNORE INTO compacted_events (event_id, at)
         SELECT event_id, ? FROM wal WHERE state = 1 AND seq <= ? AND event_id IS NOT NULL`,
      ),
      pruneEvents: db.prepare<[number]>('DELETE FROM compacted_events WHERE at < ?'),
      pendingPage: db.prepare<[number, number], WalRow & { client_seq: number }>(
        'SELECT client_seq, body FROM wal WHERE state = 0 AND client_seq > ? ORDER BY client_seq LIMIT ?',
      ),
      // What the uploader sends: pending and not yet acknowledged (a held ack already has its seq).
      pendingPageSized: db.prepare<[number, number], WalRow & { client_seq: number; bytes: number }>(
        'SELECT client_seq, body, bytes FROM wal WHERE state = 0 AND seq IS NULL AND client_seq > ? ORDER BY client_seq LIMIT ?',
      ),
      pendingForEntity: db.prepare<[string, string], WalRow & { client_seq: number }>(
        'SELECT client_seq, body FROM wal WHERE state = 0 AND collection = ? AND entity_id = ? ORDER BY client_seq',
      ),
      pendingCount: db.prepare<[], { n: number }>('SELECT count(*) AS n FROM wal WHERE state = 0'),
      pendingAtOrBelow: db.prepare<[number], { one: number }>(
        'SELECT 1 AS one FROM wal WHERE client_seq <= ? AND state = 0 LIMIT 1',
      ),
      byId: db.prepare<[string], { client_seq: number; state: number; seq: number | null; body: string }>(
        'SELECT client_seq, state, seq, body FROM wal WHERE id = ?',
      ),
      acknowledge: db.prepare<[number, string]>('UPDATE wal SET state = 1, seq = ? WHERE id = ? AND state = 0'),
      pendingById: db.prepare<[string], WalRow & { client_seq: number }>(
        'SELECT client_seq, body FROM wal WHERE id = ? AND state = 0',
      ),
      takeAcknowledged: db.prepare<[number, string], WalRow & { client_seq: number }>(
        'UPDATE wal SET state = 1, seq = ? WHERE id = ? AND state = 0 RETURNING client_seq, body',
      ),
      takeRejected: db.prepare<[string, string], WalRow & { client_seq: number }>(
        'UPDATE wal SET state = 2, reason = ? WHERE id = ? AND state = 0 RETURNING client_seq, body',
      ),
      hold: db.prepare<[number, string]>('UPDATE wal SET seq = ? WHERE id = ? AND state = 0'),
      held: db.prepare<[], WalRow & { client_seq: number; seq: number }>(
        'SELECT client_seq, body, seq FROM wal WHERE state = 0 AND seq IS NOT NULL ORDER BY client_seq',
      ),
      anyHeld: db.prepare<[], { one: number }>('SELECT 1 AS one FROM wal WHERE state = 0 AND seq IS NOT NULL LIMIT 1'),
      compact: db.prepare<[number]>('DELETE FROM wal WHERE state = 1 AND seq <= ?'),
      deadLetter: db.prepare(
        'INSERT INTO dead_letters (at, source_ref, code, reason, payload) VALUES (@at, @sourceRef, @code, @reason, @payload)',
      ),
      deadLetterCount: db.prepare<[], { n: number }>('SELECT count(*) AS n FROM dead_letters'),
      pendingKeys: db.prepare<[], { collection: string; entity_id: string }>(
        'SELECT DISTINCT collection, entity_id FROM wal WHERE state = 0',
      ),
    };
    this.#pendingCount = this.#stmts.pendingCount.get()?.n ?? 0;
    // The batched forms: one statement per batch of keys, not one per row (keyed-batch.ts).
    this.#batched = {
      pendingForEntities: new KeyedBatch<WalRow & { client_seq: number; collection: string; entity_id: string }>(
        db,
        2,
        (keys) => `WITH k(collection, entity_id) AS (${keys})
          SELECT client_seq, collection, entity_id, body FROM wal
          WHERE state = 0 AND (collection, entity_id) IN (SELECT collection, entity_id FROM k)
          ORDER BY client_seq`,
      ),
      capturedEvents: new KeyedBatch<{ event_id: string }>(
        db,
        1,
        (keys) => `WITH k(event_id) AS (${keys})
          SELECT event_id FROM wal WHERE event_id IN k
          UNION ALL SELECT event_id FROM compacted_events WHERE event_id IN k`,
      ),
      takeAcknowledged: new KeyedBatch<WalRow & { client_seq: number; id: string }>(
        db,
        2,
        (keys) => `WITH k(id, seq) AS (${keys})
          UPDATE wal SET state = 1, seq = k.seq FROM k
          WHERE wal.id = k.id AND wal.state = 0
          RETURNING client_seq, id, body`,
      ),
    };
  }

  /** Opens (creating if needed) the store at `path`, in WAL mode with full fsync. */
  static open(path: string, options: WalStoreOptions): WalStore {
    const db = new Database(path);
    db.pragma('journal_mode = WAL');
    // Pulled pages and acknowledgements can be fetched again from the server, so
    // they commit with NORMAL (durable against a crash; a power loss may roll back
    // the newest ones, whole). Captured intent commits with FULL: see durably().
    db.pragma('synchronous = NORMAL');
    db.pragma('busy_timeout = 5000');
    db.exec(WAL_SCHEMA);
    const stored = db.prepare<[], { value: string }>("SELECT value FROM meta WHERE key = 'schema_version'").get();
    try {
      // Read as every meta number is: a damaged value is an `internal` error naming the key.
      const version = readMetaNumber(stored?.value, 'schema_version', WAL_SCHEMA_VERSION);
      if (stored === undefined) {
        db.prepare("INSERT INTO meta (key, value) VALUES ('schema_version', ?)").run(String(WAL_SCHEMA_VERSION));
      } else if (WAL_SCHEMA_UPGRADABLE.has(version)) {
        db.prepare("UPDATE meta SET value = ? WHERE key = 'schema_version'").run(String(WAL_SCHEMA_VERSION));
      } else if (version !== WAL_SCHEMA_VERSION) {
        throw new FerryError(
          ErrorCode.Internal,
          `${path}: WAL schema version ${version}, this build reads ${WAL_SCHEMA_VERSION}`,
        );
      }
    } catch (err) {
      db.close();
      throw err;
    }
    return new WalStore(db, options);
  }

  /** The underlying connection, for components that join the same transactions. */
  get db(): Database.Database {
    return this.#db;
  }

  /**
   * Turns validated change events into actions and appends them, all in one
   * transaction: each gets the next clientSeq and a fresh hlc; an eventId seen
   * before (an app retry or a redelivery) is skipped. Idempotent for events with ids.
   */
  appendMany(events: readonly ChangeEvent[]): AppendResult {
    // Counters advance only once the transaction has committed: a rolled-back
    // batch must not leave a hole in clientSeq (the server would call it a gap).
    let nextClientSeq = this.#nextClientSeq;
    let bodies: string[] = [];
    const result = this.durably((): AppendResult => {
      nextClientSeq = this.#nextClientSeq;
      const appended: Action[] = [];
      bodies = [];
      let duplicates = 0;
      // Every eventId captured before, and each one met in this batch: skipped.
      const seen = this.#capturedEventIds(events);
      for (const event of events) {
        if (event.eventId !== undefined) {
          if (seen.has(event.eventId)) {
            duplicates++;
            continue;
          }
          seen.add(event.eventId);
        }
        const tick = this.clock.send();
        if (!tick.ok) throw new Error(tick.message);
        const id = this.#newId();
        const action: Record<string, unknown> = {
          id,
          clientId: this.clientId,
          clientSeq: nextClientSeq,
          collection: event.collection,
          entityId: event.id,
          op: event.op,
          hlc: tick.hlc,
        };
        if (event.fields !== undefined) action.fields = event.fields;
        if (event.baseVersion !== undefined) action.baseVersion = event.baseVersion;
        const body = JSON.stringify(action);
        // Positional, not named, parameters: binding from an object costs a property lookup per column.
        this.#stmts.insert.run(
          nextClientSeq,
          id,
          event.eventId ?? null,
          event.collection,
          event.id,
          body,
          Buffer.byteLength(body),
        );
        nextClientSeq++;
        appended.push(action as Action);
        bodies.push(body);
      }
      if (appended.length > 0) {
        this.#stmts.setMeta.run('next_client_seq', String(nextClientSeq));
        this.#stmts.setMeta.run('hlc_last', String(this.clock.last));
      }
      return { appended, duplicates };
    });
    this.#nextClientSeq = nextClientSeq;
    this.#pendingCount += result.appended.length;
    // Only after the append's transaction: a rolled-back batch's clientSeqs are handed out again.
    // (Nested in a caller's transaction that rolls back later, they are too, with other text,
    // which #decode's text comparison turns away.)
    result.appended.forEach((a, i) => this.#remember(a.clientSeq, bodies[i] as string, a));
    return result;
  }

  #remember(clientSeq: number, body: string, action: Action): void {
    const cache = this.#decoded;
    if (cache.size >= DECODED_CACHE) {
      for (const k of cache.keys()) {
        cache.delete(k);
        if (cache.size < DECODED_CACHE * 0.9) break;
      }
    }
    cache.set(clientSeq, { body, action });
  }

  /** A WAL row back into an action: the cached one while the row holds the text it was made from. */
  #decode(body: string, clientSeq: number): Action {
    const hit = this.#decoded.get(clientSeq);
    if (hit !== undefined && hit.body === body) return hit.action;
    const action = decodeAction(body, clientSeq);
    this.#remember(clientSeq, body, action);
    return action;
  }

  /** The eventIds among these events that an earlier capture already holds (in the WAL or compacted). */
  #capturedEventIds(events: readonly ChangeEvent[]): Set<string> {
    const ids: string[][] = [];
    for (const e of events) if (e.eventId !== undefined) ids.push([e.eventId]);
    const found = new Set<string>();
    for (const row of this.#batched.capturedEvents.rows(ids)) found.add(row.event_id);
    return found;
  }

  /**
   * Runs `fn` in one transaction that is fsynced at commit: an acknowledgement
   * to the bus (or an outbox row deleted) means the change survives power loss.
   * Inside an outer transaction, the outer one must be opened with durably().
   */
  durably<T>(fn: () => T): T {
    if (this.#db.inTransaction) return this.#db.transaction(fn)();
    this.#db.pragma('synchronous = FULL');
    try {
      return this.#db.transaction(fn)();
    } finally {
      this.#db.pragma('synchronous = NORMAL');
    }
  }

  /** Up to `limit` pending actions after `afterClientSeq`, in clientSeq order. */
  readPending(afterClientSeq: number, limit: number): Action[] {
    return this.#stmts.pendingPage.all(afterClientSeq, limit).map((r) => this.#decode(r.body, r.client_seq));
  }

  /**
   * The uploader's page: as readPending without held acknowledgements (those
   * have their seq and come back through the pull), with each action's stored
   * JSON size (for byte-budgeted batches).
   */
  readPendingSized(afterClientSeq: number, limit: number): { action: Action; bytes: number }[] {
    return this.#stmts.pendingPageSized
      .all(afterClientSeq, limit)
      .map((r) => ({ action: this.#decode(r.body, r.client_seq), bytes: r.bytes }));
  }

  /** Pending actions on one entity, in the order they were made (for the overlay). */
  pendingFor(collection: string, entityId: string): Action[] {
    return this.#stmts.pendingForEntity.all(collection, entityId).map((r) => this.#decode(r.body, r.client_seq));
  }

  /** pendingFor of many entities in one query, by `entityKey`; an entity with none is absent. */
  pendingForMany(keys: readonly (readonly [string, string])[]): Map<string, Action[]> {
    const out = new Map<string, Action[]>();
    // Each key in one chunk only, so each list is read in one query, in clientSeq order.
    const unique = [...new Map(keys.map((k) => [entityKey(k[0], k[1]), k])).values()];
    for (const r of this.#batched.pendingForEntities.rows(unique)) {
      const key = entityKey(r.collection, r.entity_id);
      const action = this.#decode(r.body, r.client_seq);
      const list = out.get(key);
      if (list === undefined) out.set(key, [action]);
      else list.push(action);
    }
    return out;
  }

  pendingCount(): number {
    return this.#pendingCount;
  }

  /** The clientSeq of the newest action appended so far (0 for none). */
  get lastClientSeq(): number {
    return this.#nextClientSeq - 1;
  }

  /** Whether any action at or below `clientSeq` still awaits its acknowledgement. */
  hasPendingAtOrBelow(clientSeq: number): boolean {
    return this.#stmts.pendingAtOrBelow.get(clientSeq) !== undefined;
  }

  /** Re-reads the in-memory counters after a rolled-back transaction. */
  reloadCounters(): void {
    this.#pendingCount = this.#stmts.pendingCount.get()?.n ?? 0;
    this.#nextClientSeq = this.metaNumber('next_client_seq', 1);
  }

  /** Entities with pending actions (for whole-state reads; not on the hot path). */
  *pendingKeys(): Generator<readonly [string, string]> {
    for (const row of this.#stmts.pendingKeys.iterate()) yield [row.collection, row.entity_id];
  }

  /** The WAL entry for an action id, with its state; undefined once compacted or never seen. */
  lookup(
    id: string,
  ): { state: 'pending' | 'acknowledged' | 'rejected'; seq: number | null; action: Action } | undefined {
    const row = this.#stmts.byId.get(id);
    if (row === undefined) return undefined;
    const state = row.state === PENDING ? 'pending' : row.state === ACKNOWLEDGED ? 'acknowledged' : 'rejected';
    return { state, seq: row.seq, action: this.#decode(row.body, row.client_seq) };
  }

  /** The pending action with this id; undefined when it is not pending (the row is only decoded then). */
  pendingById(id: string): Action | undefined {
    const row = this.#stmts.pendingById.get(id);
    return row === undefined ? undefined : this.#decode(row.body, row.client_seq);
  }

  /**
   * Settles one pending action in a single statement (the caller's transaction):
   * acknowledged with its seq, or rejected with the reason. Returns the action,
   * or undefined when it was not pending.
   */
  settle(id: string, outcome: { seq: number } | { reason: string }): Action | undefined {
    const row =
      'seq' in outcome
        ? this.#stmts.takeAcknowledged.get(outcome.seq, id)
        : this.#stmts.takeRejected.get(outcome.reason, id);
    if (row === undefined) return undefined;
    this.#pendingCount--;
    return this.#decode(row.body, row.client_seq);
  }

  /**
   * settle(id, {seq}) of many in one statement (the caller's transaction): the
   * actions that were pending, by id.
   */
  settleAcknowledged(acks: readonly { id: string; seq: number }[]): Map<string, Action> {
    const out = new Map<string, Action>();
    // An id twice: the first seq counts, as with settle() one by one (UPDATE … FROM would pick either).
    const first = new Map<string, number>();
    for (const a of acks) if (!first.has(a.id)) first.set(a.id, a.seq);
    for (const r of this.#batched.takeAcknowledged.rows([...first])) {
      out.set(r.id, this.#decode(r.body, r.client_seq));
    }
    this.#pendingCount -= out.size;
    return out;
  }

  /** Records server seqs; returns how many pending entries it acknowledged. */
  markAcknowledged(acks: readonly { id: string; seq: number }[]): number {
    const n = this.#db.transaction(() =>
      acks.reduce((sum, a) => sum + this.#stmts.acknowledge.run(a.seq, a.id).changes, 0),
    )();
    this.#pendingCount -= n;
    return n;
  }

  /**
   * Records an acknowledgement's seq but leaves the action pending: while a
   * snapshot bootstrap runs, our actions fold in when pulled back, in seq order.
   */
  holdAcknowledged(acks: readonly { id: string; seq: number }[]): void {
    for (const a of acks) this.#stmts.hold.run(a.seq, a.id);
  }

  /** Pending actions with a held acknowledgement, in clientSeq order. */
  held(): { action: Action; seq: number }[] {
    return this.#stmts.held.all().map((r) => ({ action: this.#decode(r.body, r.client_seq), seq: r.seq }));
  }

  hasHeld(): boolean {
    return this.#stmts.anyHeld.get() !== undefined;
  }

  /**
   * Deletes acknowledged entries at or below `seq` (their effect lives in
   * confirmed state), keeping their event ids for deduplication for
   * `keepEventsMs` (JetStream redelivers within seconds; app retries are bounded too).
   */
  compact(seq: number, keepEventsMs = 7 * 24 * 3_600_000): number {
    const now = this.#now();
    this.#stmts.keepEvents.run(now, seq);
    // Pruning scans the table: at most once an hour.
    if (now - this.#prunedAt > 3_600_000) {
      this.#stmts.pruneEvents.run(now - keepEventsMs);
      this.#prunedAt = now;
    }
    return this.#stmts.compact.run(seq).changes;
  }

  deadLetter(letter: DeadLetter): number {
    return Number(
      this.#stmts.deadLetter.run({
        at: this.#now(),
        sourceRef: letter.sourceRef,
        code: letter.code,
        reason: letter.reason,
        payload: letter.payload === undefined ? null : Buffer.from(letter.payload),
      }).lastInsertRowid,
    );
  }

  deadLetterCount(): number {
    return this.#stmts.deadLetterCount.get()?.n ?? 0;
  }

  /** A numeric meta value (cursor, counters, clock): a damaged one is an `internal` error naming the key. */
  metaNumber(key: string, fallback: number): number {
    return readMetaNumber(this.getMeta(key), key, fallback);
  }

  getMeta(key: string): string | undefined {
    return this.#stmts.getMeta.get(key)?.value;
  }

  setMeta(key: string, value: string): void {
    this.#stmts.setMeta.run(key, value);
  }

  close(): void {
    if (this.#db.open) this.#db.close();
  }
}

/** Decoded actions kept: a few batches (append, overlay, upload, ack follow each other); more costs RSS (bench:sync). */
const DECODED_CACHE = 5_000;

function readMetaNumber(value: string | undefined, key: string, fallback: number): number {
  return value === undefined ? fallback : decodeStored(seqSchema, value, `meta ${key}`);
}

/** The action's keys, from its schema; a WAL row never holds the server's seq. */
const ACTION_KEYS = new Set(Object.keys(actionSchema.shape).filter((key) => key !== 'seq'));

/**
 * A WAL row back into an action; a damaged row is an `internal` error that
 * names it. Rows are read several times each (upload, overlay, settle), so a
 * row of the expected shape is taken after a cheap check of every key and
 * type; anything else goes through the schema, which names the fault.
 */
function decodeAction(body: string, clientSeq: number): Action {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    value = undefined;
  }
  if (hasActionShape(value, clientSeq)) return value;
  return decodeStored(actionSchema, body, `wal row ${clientSeq}`);
}

function hasActionShape(value: unknown, clientSeq: number): value is Action {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const a = value as Record<string, unknown>;
  for (const k in a) if (!ACTION_KEYS.has(k)) return false;
  const { fields, op } = a;
  const fieldsOk =
    op === 'delete'
      ? fields === undefined
      : typeof fields === 'object' &&
        fields !== null &&
        !Array.isArray(fields) &&
        (op === 'create' || (op === 'update' && Object.keys(fields).length > 0));
  return (
    fieldsOk &&
    a.clientSeq === clientSeq &&
    typeof a.id === 'string' &&
    a.id.length === 36 &&
    typeof a.clientId === 'string' &&
    a.clientId.length === 36 &&
    typeof a.collection === 'string' &&
    a.collection.length > 0 &&
    typeof a.entityId === 'string' &&
    a.entityId.length > 0 &&
    Number.isSafeInteger(a.hlc) &&
    (a.hlc as number) > 0 &&
    (a.baseVersion === undefined || (Number.isSafeInteger(a.baseVersion) && (a.baseVersion as number) >= 0))
  );
}

export const WAL_STATES = { PENDING, ACKNOWLEDGED, REJECTED } as const;
