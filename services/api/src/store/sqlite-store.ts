/**
 * The embedded ApiStore on better-sqlite3: one IMMEDIATE transaction per push
 * batch, prepared statements reused, entity records folded incrementally with
 * libs/domain (never by replaying the log). It must never hold a transaction
 * open across an await: every method runs to completion synchronously.
 */
import Database from 'better-sqlite3';
import type { Statement } from 'better-sqlite3';
import {
  ErrorCode,
  FerryError,
  PushStatus,
  type Action,
  type ClientId,
  type EntityRecord,
  type PushResult,
  type TenantId,
} from '@ferry/contracts';
import {
  applyAction,
  checkBaseVersion,
  emptyRecord,
  PolicyBook,
  recordFromJson,
  recordToJson,
  viewRecord,
  type EntityRec,
} from '@ferry/domain';
import { classifyClientSeq, clientSeqGapError, clientSeqReusedReason } from './push-rules.js';
import { openSchema } from './sqlite-schema.js';
import { RecordCache } from './record-cache.js';
import type {
  ApiStore,
  EntityRecordJson,
  PullInput,
  PullPage,
  PurgeInput,
  PurgeReport,
  PushInput,
  PushOutcome,
  SnapshotInput,
  SnapshotPage,
  StoredActionJson,
  TenantStats,
} from './store.js';

export interface SqliteStoreOptions {
  /** Database file; created with its directory's permissions when absent. */
  readonly path: string;
  /** Collection policies (reject-stale is enforced here); lww when absent. */
  readonly policies?: PolicyBook;
  /** Log rows deleted per purge transaction, so a purge never stalls pushes for long. */
  readonly purgeChunk?: number;
  /** Committed entity records kept in memory (LRU); 0 disables the cache. */
  readonly recordCacheSize?: number;
}

/** A cursor write is skipped when nothing changed and the last one is this recent. */
const CURSOR_REFRESH_MS = 60_000;

interface TenantRow {
  id: number;
  head_seq: number;
  purged_through: number;
}
interface ClientRow {
  id: number;
  high_client_seq: number;
}
interface LoadedRecord {
  rec: EntityRec;
  dirty: boolean;
}

type Stmt<P extends unknown[], R = unknown> = Statement<P, R>;

export class SqliteStore implements ApiStore {
  readonly #db: Database.Database;
  readonly #policies: PolicyBook;
  readonly #purgeChunk: number;
  /** Tenant name → row id; tenants are never deleted, so the cache never goes stale. */
  readonly #tenantIds = new Map<string, number>();
  /** Last cursor written per (tenant id, client id), to skip redundant writes. */
  readonly #cursors = new Map<string, { cursor: number; at: number }>();
  readonly #s: ReturnType<typeof prepareStatements>;
  readonly #pushTx: (tenantId: number, input: PushInput) => PushOutcome;
  readonly #cache: RecordCache;

  private constructor(db: Database.Database, options: SqliteStoreOptions) {
    this.#db = db;
    this.#policies = options.policies ?? new PolicyBook();
    this.#purgeChunk = options.purgeChunk ?? 10_000;
    this.#s = prepareStatements(db);
    this.#cache = new RecordCache(options.recordCacheSize ?? 20_000);
    const tx = db.transaction((tenantId: number, input: PushInput, records: Map<string, LoadedRecord>) =>
      this.#pushInTx(tenantId, input, records),
    );
    this.#pushTx = (tenantId, input) => {
      const records = new Map<string, LoadedRecord>();
      let outcome: PushOutcome;
      try {
        // IMMEDIATE takes the write lock up front, so two processes on one file serialise cleanly.
        outcome = tx.immediate(tenantId, input, records);
      } catch (err) {
        // Rolled back: records mutated in place no longer match the database.
        for (const key of records.keys()) this.#cache.delete(key);
        throw err;
      }
      for (const [key, loaded] of records) this.#cache.set(key, loaded.rec);
      return outcome;
    };
  }

  static open(options: SqliteStoreOptions): SqliteStore {
    const db = new Database(options.path);
    try {
      openSchema(db);
      return new SqliteStore(db, options);
    } catch (err) {
      db.close();
      throw err;
    }
  }

  push(tenant: TenantId, input: PushInput): Promise<PushOutcome> {
    return this.#guard(() => this.#pushTx(this.#ensureTenant(tenant), input));
  }

  pull(tenant: TenantId, input: PullInput): Promise<PullPage> {
    return this.#guard(() => this.#pull(tenant, input));
  }

  snapshot(tenant: TenantId, input: SnapshotInput): Promise<SnapshotPage> {
    return this.#guard(() => this.#snapshot(tenant, input));
  }

  purge(input: PurgeInput): Promise<PurgeReport> {
    return this.#guard(() => this.#purge(input));
  }

  stats(tenant: TenantId): Promise<TenantStats> {
    return this.#guard(() => {
      const row = this.#s.tenantByName.get(tenant);
      if (row === undefined) return { headSeq: 0, purgedThrough: 0, actions: 0, entities: 0 };
      return {
        headSeq: row.head_seq,
        purgedThrough: row.purged_through,
        actions: this.#s.countActions.pluck().get(row.id) as number,
        entities: this.#s.countEntities.pluck().get(row.id) as number,
      };
    });
  }

  close(): Promise<void> {
    if (this.#db.open) this.#db.close();
    return Promise.resolve();
  }

  /** Runs a synchronous store operation; storage trouble becomes `unavailable` (retryable). */
  #guard<T>(fn: () => T): Promise<T> {
    try {
      return Promise.resolve(fn());
    } catch (err) {
      return Promise.reject(mapSqliteError(err));
    }
  }

  #ensureTenant(tenant: string): number {
    const cached = this.#tenantIds.get(tenant);
    if (cached !== undefined) return cached;
    this.#s.insertTenant.run(tenant);
    const row = this.#s.tenantByName.get(tenant) as TenantRow;
    this.#tenantIds.set(tenant, row.id);
    return row.id;
  }

  /** The body of the push transaction; throwing rolls the whole batch back. */
  #pushInTx(tenantId: number, input: PushInput, records: Map<string, LoadedRecord>): PushOutcome {
    const s = this.#s;
    let head = (s.tenantById.get(tenantId) as TenantRow).head_seq;
    let client = s.clientByKey.get(tenantId, input.clientId);
    if (client === undefined) {
      const id = Number(s.insertClient.run(tenantId, input.clientId, input.now).lastInsertRowid);
      client = { id, high_client_seq: 0 };
    }
    let high = client.high_client_seq;
    const results: PushResult[] = [];
    let stored = 0;

    for (let i = 0; i < input.actions.length; i++) {
      const action = input.actions[i] as Action;
      const kind = classifyClientSeq(high, action.clientSeq);
      if (kind === 'gap') throw clientSeqGapError(i, action, high);
      if (kind === 'seen') {
        results.push(this.#settledBefore(tenantId, client.id, action, records));
        continue;
      }
      high = action.clientSeq;
      const loaded = this.#loadRecord(records, tenantId, action.collection, action.entityId);
      const policy = this.#policies.for(action.collection);
      if (policy.kind === 'reject-stale') {
        const check = checkBaseVersion(loaded.rec, action, viewRecord);
        if (!check.ok) {
          s.insertRejection.run(tenantId, client.id, action.clientSeq, action.id, check.reason, input.now);
          results.push({ id: action.id, status: PushStatus.Rejected, reason: check.reason, current: check.current });
          continue;
        }
      }
      const seq = ++head;
      const storedAction: Action = { ...action, seq };
      s.insertAction.run(tenantId, seq, client.id, action.clientSeq, JSON.stringify(storedAction));
      applyAction(loaded.rec, storedAction, policy);
      loaded.dirty = true;
      stored++;
      results.push({ id: action.id, status: PushStatus.Accepted, seq });
    }

    for (const { rec, dirty } of records.values()) {
      if (!dirty) continue;
      s.upsertEntity.run(
        tenantId,
        rec.collection,
        rec.id,
        rec.seq,
        rec.deleted === null ? 0 : 1,
        JSON.stringify(recordToJson(rec)),
      );
    }
    s.updateClientHigh.run(high, input.now, client.id);
    if (stored > 0) s.setHead.run(head, tenantId);
    return { results, headSeq: head, stored };
  }

  /** A clientSeq at or below the high-water mark: replay the outcome it had. */
  #settledBefore(tenantId: number, clientRef: number, action: Action, records: Map<string, LoadedRecord>): PushResult {
    const s = this.#s;
    const prior = s.actionByClientSeq.get(tenantId, clientRef, action.clientSeq);
    if (prior !== undefined) {
      if (prior.id === action.id) return { id: action.id, status: PushStatus.Duplicate, seq: prior.seq };
      return { id: action.id, status: PushStatus.Rejected, reason: clientSeqReusedReason(action.clientSeq, prior.id) };
    }
    const rejection = s.rejectionByClientSeq.get(tenantId, clientRef, action.clientSeq);
    if (rejection !== undefined) {
      if (rejection.id !== action.id) {
        return {
          id: action.id,
          status: PushStatus.Rejected,
          reason: clientSeqReusedReason(action.clientSeq, rejection.id),
        };
      }
      const result: PushResult = { id: action.id, status: PushStatus.Rejected, reason: rejection.reason };
      if (this.#policies.for(action.collection).kind === 'reject-stale') {
        result.current = viewRecord(this.#loadRecord(records, tenantId, action.collection, action.entityId).rec);
      }
      return result;
    }
    // Settled so long ago that retention purged its log entry: it is not applied again.
    return { id: action.id, status: PushStatus.Duplicate };
  }

  #loadRecord(records: Map<string, LoadedRecord>, tenantId: number, collection: string, id: string): LoadedRecord {
    const key = `${tenantId}\u0000${collection}\u0000${id}`;
    let loaded = records.get(key);
    if (loaded === undefined) {
      let rec = this.#cache.get(key);
      if (rec === undefined) {
        const json = this.#s.entityJson.get(tenantId, collection, id);
        rec = json === undefined ? emptyRecord(collection, id) : recordFromJson(JSON.parse(json) as EntityRecord);
      }
      loaded = { rec, dirty: false };
      records.set(key, loaded);
    }
    return loaded;
  }

  #pull(tenant: string, input: PullInput): PullPage {
    const row = this.#s.tenantByName.get(tenant);
    const head = row?.head_seq ?? 0;
    const purgedThrough = row?.purged_through ?? 0;
    if (input.since < purgedThrough || input.since > head) {
      // Below the horizon the log has holes for this client; beyond the head it follows another history.
      return { actions: [], next: input.since, more: false, resetRequired: true, headSeq: head };
    }
    if (row !== undefined && input.clientId !== undefined)
      this.#recordCursor(row.id, input.clientId, input.since, input.now);
    const actions: StoredActionJson[] = [];
    let next = input.since;
    if (row !== undefined && input.since < head) {
      let bytes = 0;
      for (const [seq, json] of this.#s.pullRows.iterate(row.id, input.since, input.limit)) {
        if (actions.length > 0 && bytes + json.length > input.maxBytes) break;
        bytes += json.length + 1;
        actions.push(json as StoredActionJson);
        next = seq;
      }
    }
    return { actions, next, more: next < head, resetRequired: false, headSeq: head };
  }

  /**
   * Cursor writes only feed retention, so they skip the commit fsync: a lost
   * cursor after a power cut makes the next purge more conservative, nothing
   * worse. The next FULL commit makes them durable anyway.
   */
  #recordCursor(tenantId: number, clientId: ClientId, cursor: number, now: number): void {
    const key = `${tenantId}:${clientId}`;
    const last = this.#cursors.get(key);
    if (last !== undefined && last.cursor === cursor && now - last.at < CURSOR_REFRESH_MS) return;
    this.#db.pragma('synchronous = NORMAL');
    try {
      this.#s.upsertCursor.run(tenantId, clientId, cursor, now);
    } finally {
      this.#db.pragma('synchronous = FULL');
    }
    this.#cursors.set(key, { cursor, at: now });
  }

  #snapshot(tenant: string, input: SnapshotInput): SnapshotPage {
    const row = this.#s.tenantByName.get(tenant);
    const seq = input.after?.seq ?? row?.head_seq ?? 0;
    if (row === undefined) return { records: [], seq, after: null, more: false };
    const rows =
      input.after === null
        ? this.#s.snapshotFirst.iterate(row.id, input.limit + 1)
        : this.#s.snapshotAfter.iterate(row.id, input.after.collection, input.after.id, input.limit + 1);
    const records: EntityRecordJson[] = [];
    let last: { collection: string; id: string } | null = null;
    let bytes = 0;
    let more = false;
    for (const [collection, id, json] of rows) {
      if (records.length === input.limit || (records.length > 0 && bytes + json.length > input.maxBytes)) {
        more = true;
        break;
      }
      bytes += json.length + 1;
      records.push(json as EntityRecordJson);
      last = { collection, id };
    }
    const after = more && last !== null ? { seq, collection: last.collection, id: last.id } : null;
    return { records, seq, after, more };
  }

  #purge(input: PurgeInput): PurgeReport {
    const s = this.#s;
    let tenants = 0;
    let actions = 0;
    let tombstones = 0;
    const seenSince = input.now - input.windowMs;
    for (const t of s.allTenants.all()) {
      const lowest = s.horizon.pluck().get(t.id, seenSince) as number | null;
      if (lowest === null) continue; // nobody pulled within the window: keep everything
      const horizon = Math.min(lowest, t.head_seq);
      if (horizon <= t.purged_through) continue;
      tenants++;
      // Chunked so pushes of every tenant get the lock between chunks.
      let through = t.purged_through;
      while (through < horizon) {
        const upTo = Math.min(through + this.#purgeChunk, horizon);
        const from = through;
        this.#db
          .transaction(() => {
            actions += s.deleteActions.run(t.id, from, upTo).changes;
            s.setPurgedThrough.run(upTo, t.id);
          })
          .immediate();
        through = upTo;
      }
      const gone = s.deleteTombstones.run(t.id, horizon).changes;
      tombstones += gone;
      if (gone > 0) this.#cache.clear(); // rare (a periodic job); simpler than finding the keys
    }
    const rejections = s.deleteRejections.run(seenSince).changes;
    return { tenants, actions, tombstones, rejections };
  }
}

function prepareStatements(db: Database.Database) {
  const p = <P extends unknown[], R = unknown>(sql: string): Stmt<P, R> => db.prepare<P, R>(sql);
  return {
    insertTenant: p<[string]>('INSERT INTO tenants (name) VALUES (?) ON CONFLICT (name) DO NOTHING'),
    tenantByName: p<[string], TenantRow>('SELECT id, head_seq, purged_through FROM tenants WHERE name = ?'),
    tenantById: p<[number], TenantRow>('SELECT id, head_seq, purged_through FROM tenants WHERE id = ?'),
    allTenants: p<[], TenantRow>('SELECT id, head_seq, purged_through FROM tenants'),
    setHead: p<[number, number]>('UPDATE tenants SET head_seq = ? WHERE id = ?'),
    setPurgedThrough: p<[number, number]>('UPDATE tenants SET purged_through = ? WHERE id = ?'),
    clientByKey: p<[number, string], ClientRow>(
      'SELECT id, high_client_seq FROM clients WHERE tenant = ? AND client_id = ?',
    ),
    insertClient: p<[number, string, number]>(
      'INSERT INTO clients (tenant, client_id, high_client_seq, last_seen) VALUES (?, ?, 0, ?)',
    ),
    updateClientHigh: p<[number, number, number]>(
      'UPDATE clients SET high_client_seq = ?, last_seen = MAX(last_seen, ?) WHERE id = ?',
    ),
    upsertCursor: p<[number, string, number, number]>(
      `INSERT INTO clients (tenant, client_id, high_client_seq, cursor, last_seen) VALUES (?, ?, 0, ?, ?)
       ON CONFLICT (tenant, client_id) DO UPDATE SET cursor = excluded.cursor, last_seen = MAX(last_seen, excluded.last_seen)`,
    ),
    insertAction: p<[number, number, number, number, string]>(
      'INSERT INTO actions (tenant, seq, client, client_seq, json) VALUES (?, ?, ?, ?, ?)',
    ),
    actionByClientSeq: p<[number, number, number], { seq: number; id: string }>(
      "SELECT seq, json_extract(json, '$.id') AS id FROM actions WHERE tenant = ? AND client = ? AND client_seq = ?",
    ),
    insertRejection: p<[number, number, number, string, string, number]>(
      'INSERT INTO rejections (tenant, client, client_seq, id, reason, at) VALUES (?, ?, ?, ?, ?, ?)',
    ),
    rejectionByClientSeq: p<[number, number, number], { id: string; reason: string }>(
      'SELECT id, reason FROM rejections WHERE tenant = ? AND client = ? AND client_seq = ?',
    ),
    entityJson: p<[number, string, string], string>(
      'SELECT json FROM entities WHERE tenant = ? AND collection = ? AND entity_id = ?',
    ).pluck(),
    upsertEntity: p<[number, string, string, number, number, string]>(
      `INSERT INTO entities (tenant, collection, entity_id, seq, deleted, json) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (tenant, collection, entity_id) DO UPDATE SET seq = excluded.seq, deleted = excluded.deleted, json = excluded.json`,
    ),
    pullRows: p<[number, number, number], [number, string]>(
      'SELECT seq, json FROM actions WHERE tenant = ? AND seq > ? ORDER BY seq LIMIT ?',
    ).raw(),
    snapshotFirst: p<[number, number], [string, string, string]>(
      'SELECT collection, entity_id, json FROM entities WHERE tenant = ? ORDER BY collection, entity_id LIMIT ?',
    ).raw(),
    snapshotAfter: p<[number, string, string, number], [string, string, string]>(
      `SELECT collection, entity_id, json FROM entities WHERE tenant = ? AND (collection, entity_id) > (?, ?)
       ORDER BY collection, entity_id LIMIT ?`,
    ).raw(),
    horizon: p<[number, number]>(
      'SELECT MIN(cursor) FROM clients WHERE tenant = ? AND cursor IS NOT NULL AND last_seen >= ?',
    ),
    deleteActions: p<[number, number, number]>('DELETE FROM actions WHERE tenant = ? AND seq > ? AND seq <= ?'),
    deleteTombstones: p<[number, number]>('DELETE FROM entities WHERE tenant = ? AND deleted = 1 AND seq <= ?'),
    deleteRejections: p<[number]>('DELETE FROM rejections WHERE at < ?'),
    countActions: p<[number]>('SELECT COUNT(*) FROM actions WHERE tenant = ?'),
    countEntities: p<[number]>('SELECT COUNT(*) FROM entities WHERE tenant = ?'),
  };
}

/** SQLite codes that mean "try again later" rather than "this request is wrong". */
const TRANSIENT_SQLITE = /^SQLITE_(BUSY|LOCKED|FULL|IOERR|CANTOPEN|PROTOCOL|READONLY)/;

function mapSqliteError(err: unknown): Error {
  if (err instanceof FerryError) return err;
  if (err instanceof Database.SqliteError && TRANSIENT_SQLITE.test(err.code)) {
    return new FerryError(ErrorCode.Unavailable, `store unavailable (${err.code})`, { cause: err });
  }
  if (err instanceof TypeError && /database connection is not open/.test(err.message)) {
    return new FerryError(ErrorCode.Unavailable, 'store is closed', { cause: err });
  }
  return err instanceof Error ? err : new Error(String(err));
}
