/**
 * The embedded ApiStore on better-sqlite3: one IMMEDIATE transaction per push
 * batch for the log; entity records folded incrementally in memory with
 * libs/domain and written behind by checkpoints (with a per-tenant watermark),
 * recovered on open by folding the log tail above the watermark. It must never
 * hold a transaction open across an await: every method runs synchronously.
 */
import Database from 'better-sqlite3';
import type { Statement } from 'better-sqlite3';
import { pino, type Logger } from 'pino';
import {
  ErrorCode,
  decodeStored,
  entityRecordSchema,
  storedActionSchema,
  FerryError,
  PushStatus,
  type Action,
  type ClientId,
  type PushResult,
  type TenantId,
} from '@ferry/contracts';
import {
  applyAction,
  checkBaseVersion,
  emptyRecord,
  PolicyBook,
  recordFromJson,
  cloneRecord,
  recordToJson,
  viewRecord,
  type CollectionPolicy,
  type EntityRec,
} from '@ferry/domain';
import { classifyClientSeq, clientSeqGapError, clientSeqReusedReason } from './push-rules.js';
import { openSchema } from './sqlite-schema.js';
import { RecordCache } from './record-cache.js';
import { CheckpointSchedule } from './checkpoint-schedule.js';
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
  /** Clean entity records kept in memory (LRU); 0 keeps none. Dirty records are never evicted. */
  readonly recordCacheSize?: number;
  /** Checkpoint once this many records are dirty (bounds memory). Default 50,000. */
  readonly checkpointMaxDirty?: number;
  /** Checkpoint once this many actions were folded since the last one (bounds recovery). Default 200,000. */
  readonly checkpointMaxActions?: number;
  /** Checkpoint at most this long after the first change since the last one. Default 1,000 ms. */
  readonly checkpointIntervalMs?: number;
  /**
   * false: checkpoint only when correctness needs it (snapshot, stats, purge,
   * `checkpoint()`), and not on close, so a close behaves like a crash. For tests.
   */
  readonly autoCheckpoint?: boolean;
  /** Checkpoint and recovery logs; silent when absent. */
  readonly logger?: Logger;
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
interface TenantWatermarkRow extends TenantRow {
  records_through: number;
}
/** An accepted lww action, folded into its record once the push committed. */
interface PendingFold {
  readonly rec: EntityRec;
  readonly action: Action;
  readonly policy: CollectionPolicy;
}
/** What one push transaction leaves to do after its commit. */
interface PushWork {
  /**
   * Every record the push touched, read inside its transaction (one read
   * snapshot instead of one per lookup). reject-stale ones are working copies
   * folded in the transaction, so a rollback leaves the held records untouched;
   * lww ones are the held records, folded only after the commit.
   */
  readonly records: Map<string, EntityRec>;
  readonly folds: PendingFold[];
  /** Keys of the records an accepted action changes: dirty after the commit. */
  readonly changed: Set<string>;
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
  readonly #pushTx: (tenantId: number, input: PushInput, work: PushWork) => PushOutcome;
  readonly #cache: RecordCache;
  readonly #logger: Logger;
  readonly #autoCheckpoint: boolean;
  readonly #schedule: CheckpointSchedule;
  /** Tenant id → head seq its in-memory records are folded through, for tenants whose watermark lags it. */
  readonly #behind = new Map<number, number>();
  /** Tenants whose records a failed recovery left incomplete: recovered again before their next push. */
  readonly #unrecovered = new Set<number>();

  private constructor(db: Database.Database, options: SqliteStoreOptions) {
    this.#db = db;
    this.#policies = options.policies ?? new PolicyBook();
    this.#purgeChunk = options.purgeChunk ?? 10_000;
    this.#s = prepareStatements(db);
    this.#cache = new RecordCache(options.recordCacheSize ?? 20_000);
    this.#logger = options.logger ?? pino({ level: 'silent' });
    this.#autoCheckpoint = options.autoCheckpoint ?? true;
    this.#schedule = new CheckpointSchedule({
      maxDirty: options.checkpointMaxDirty ?? 50_000,
      maxActions: options.checkpointMaxActions ?? 200_000,
      intervalMs: options.checkpointIntervalMs ?? 1000,
      run: () => this.#backgroundCheckpoint(),
    });
    if (!this.#autoCheckpoint) this.#schedule.stop();
    const tx = db.transaction((tenantId: number, input: PushInput, work: PushWork) =>
      this.#pushInTx(tenantId, input, work),
    );
    // IMMEDIATE takes the write lock up front, so two processes on one file serialise cleanly.
    this.#pushTx = (tenantId, input, work) => tx.immediate(tenantId, input, work);
  }

  /** Opens the file and recovers records the last run folded but did not checkpoint. */
  static open(options: SqliteStoreOptions): SqliteStore {
    const db = new Database(options.path);
    try {
      openSchema(db);
      const store = new SqliteStore(db, options);
      store.#recover();
      return store;
    } catch (err) {
      db.close();
      throw err;
    }
  }

  push(tenant: TenantId, input: PushInput): Promise<PushOutcome> {
    return this.#guard(() => this.#push(this.#ensureTenant(tenant), input));
  }

  /** Writes every dirty record and the watermarks in one transaction. */
  checkpoint(): Promise<void> {
    return this.#guard(() => this.#checkpoint());
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
      this.#checkpoint(); // the entity count is read from the table
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

  /** Checkpoints (unless autoCheckpoint is off) and closes; SIGTERM ends here through ApiApp.stop(). */
  close(): Promise<void> {
    this.#schedule.stop();
    if (!this.#db.open) return Promise.resolve();
    return this.#guard(() => {
      try {
        if (this.#autoCheckpoint) this.#checkpoint();
      } finally {
        this.#db.close();
      }
    });
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

  #push(tenantId: number, input: PushInput): PushOutcome {
    if (this.#unrecovered.has(tenantId)) this.#recoverTenant(tenantId);
    const work: PushWork = { records: new Map(), folds: [], changed: new Set() };
    // A throw here rolled the batch back; the working copies and pending folds are simply dropped.
    const outcome = this.#pushTx(tenantId, input, work);
    if (outcome.stored > 0) {
      try {
        this.#foldCommitted(tenantId, work);
      } catch (err) {
        // Committed, but the records went wrong: re-derive them from the table and the log.
        this.#logger.error({ err, tenantId }, 'folding a committed push failed; recovering the tenant records');
        this.#recoverTenant(tenantId);
      }
      this.#behind.set(tenantId, outcome.headSeq);
      this.#schedule.noteFolded(outcome.stored, this.#cache.dirtySize);
    }
    return outcome;
  }

  #foldCommitted(tenantId: number, work: PushWork): void {
    for (const { rec, action, policy } of work.folds) applyAction(rec, action, policy);
    // reject-stale copies replace the held records; lww records were folded in place.
    for (const key of work.changed) this.#cache.setDirty(key, tenantId, work.records.get(key) as EntityRec);
  }

  /** The body of the push transaction; throwing rolls the whole batch back. */
  #pushInTx(tenantId: number, input: PushInput, work: PushWork): PushOutcome {
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
        results.push(this.#settledBefore(tenantId, client.id, action, work));
        continue;
      }
      high = action.clientSeq;
      const policy = this.#policies.for(action.collection);
      const key = recordKey(tenantId, action.collection, action.entityId);
      let working: EntityRec | null = null;
      if (policy.kind === 'reject-stale') {
        // The stale check must see this batch's earlier actions, so these records fold inside the transaction.
        working = this.#touchRecord(work, key, tenantId, action, true);
        const check = checkBaseVersion(working, action, viewRecord);
        if (!check.ok) {
          s.insertRejection.run(tenantId, client.id, action.clientSeq, action.id, check.reason, input.now);
          results.push({ id: action.id, status: PushStatus.Rejected, reason: check.reason, current: check.current });
          continue;
        }
      } else if (policy.kind === 'custom') {
        // Checkpoints persist records with recordToJson, which cannot carry a custom merge's history.
        throw new Error(`${action.collection}: records of custom-merge collections cannot be stored by this store`);
      }
      const seq = ++head;
      const storedAction: Action = { ...action, seq };
      s.insertAction.run(tenantId, seq, client.id, action.clientSeq, JSON.stringify(storedAction));
      work.changed.add(key);
      if (working !== null) applyAction(working, storedAction, policy);
      else
        work.folds.push({
          rec: this.#touchRecord(work, key, tenantId, action, false),
          action: storedAction,
          policy,
        });
      stored++;
      results.push({ id: action.id, status: PushStatus.Accepted, seq });
    }

    s.updateClientHigh.run(high, input.now, client.id);
    if (stored > 0) s.setHead.run(head, tenantId);
    return { results, headSeq: head, stored };
  }

  /** A clientSeq at or below the high-water mark: replay the outcome it had. */
  #settledBefore(tenantId: number, clientRef: number, action: Action, work: PushWork): PushResult {
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
        const key = recordKey(tenantId, action.collection, action.entityId);
        result.current = viewRecord(this.#touchRecord(work, key, tenantId, action, true));
      }
      return result;
    }
    // Settled so long ago that retention purged its log entry: it is not applied again.
    return { id: action.id, status: PushStatus.Duplicate };
  }

  /**
   * The record this push works on: the held one, or with `copy` a copy made on
   * first touch, so a rollback cannot leave a half-folded record held.
   */
  #touchRecord(work: PushWork, key: string, tenantId: number, action: Action, copy: boolean): EntityRec {
    let rec = work.records.get(key);
    if (rec === undefined) {
      rec = this.#heldRecord(key, tenantId, action.collection, action.entityId);
      if (copy) rec = cloneRecord(rec);
      work.records.set(key, rec);
    }
    return rec;
  }

  /** The current record: held in memory (dirty or clean), else read from the table and held clean. */
  #heldRecord(key: string, tenantId: number, collection: string, id: string): EntityRec {
    let rec = this.#cache.get(key);
    if (rec === undefined) {
      // Not dirty, so its row (or its absence) is current.
      const json = this.#s.entityJson.get(tenantId, collection, id);
      rec =
        json === undefined
          ? emptyRecord(collection, id)
          : recordFromJson(decodeStored(entityRecordSchema, json, `entities row ${collection}/${id}`));
      this.#cache.setClean(key, rec);
    }
    return rec;
  }

  /**
   * Writes every dirty record and, for each tenant they belong to, the
   * watermark (the head they are folded through) in one transaction: after a
   * crash the table holds every action at or below the watermark. Runs between
   * pushes only (all store calls are synchronous). synchronous=NORMAL: losing
   * a checkpoint to a power cut loses its watermark with it, and recovery
   * folds the log again.
   */
  #checkpoint(): void {
    if (this.#behind.size === 0 && this.#cache.dirtySize === 0) return;
    const started = performance.now();
    const s = this.#s;
    const written: string[] = [];
    this.#db.pragma('synchronous = NORMAL');
    try {
      this.#db
        .transaction(() => {
          for (const [key, { tenantId, rec }] of this.#cache.dirtyEntries()) {
            s.upsertEntity.run(
              tenantId,
              rec.collection,
              rec.id,
              rec.seq,
              rec.deleted === null ? 0 : 1,
              JSON.stringify(recordToJson(rec)),
            );
            written.push(key);
          }
          for (const [tenantId, head] of this.#behind) s.setRecordsThrough.run(head, tenantId);
        })
        .immediate();
    } finally {
      this.#db.pragma('synchronous = FULL');
    }
    this.#cache.markClean(written);
    const tenants = this.#behind.size;
    this.#behind.clear();
    this.#schedule.reset();
    this.#logger.debug(
      { records: written.length, tenants, ms: Math.round(performance.now() - started) },
      'records checkpoint',
    );
  }

  #backgroundCheckpoint(): void {
    if (!this.#db.open) return;
    try {
      this.#checkpoint();
    } catch (err) {
      // The dirty records stay held; the next push schedules another attempt.
      this.#logger.warn({ err: mapSqliteError(err) }, 'records checkpoint failed; will retry');
    }
  }

  /** On open: every tenant whose watermark lags its head gets its log tail folded, then one checkpoint. */
  #recover(): void {
    for (const t of this.#s.allTenantWatermarks.all()) {
      if (t.records_through < t.head_seq) this.#foldTail(t);
    }
    this.#checkpoint();
  }

  /** After a failed post-commit fold: forget the tenant's held records and re-derive them. */
  #recoverTenant(tenantId: number): void {
    this.#unrecovered.add(tenantId);
    this.#cache.dropTenant(tenantId);
    this.#behind.delete(tenantId);
    const row = this.#s.tenantWatermarkById.get(tenantId);
    if (row !== undefined && row.records_through < row.head_seq) this.#foldTail(row);
    this.#unrecovered.delete(tenantId);
  }

  /**
   * Folds the log rows above the watermark into the records. A record written
   * by a checkpoint already holds every action up to its own `seq` (actions
   * reach a record in seq order), so those are skipped: the fold is exact
   * whatever the table holds between the watermark and the head.
   */
  #foldTail(t: TenantWatermarkRow): void {
    if (t.records_through < t.purged_through) {
      throw new Error(
        `store: tenant ${t.id} records are checkpointed through ${t.records_through} but its log is purged through ${t.purged_through}; records cannot be recovered`,
      );
    }
    const started = performance.now();
    let folded = 0;
    for (const json of this.#s.logTail.iterate(t.id, t.records_through)) {
      const action = decodeStored(storedActionSchema, json, `log row of tenant ${t.id}`);
      const key = recordKey(t.id, action.collection, action.entityId);
      const rec = this.#heldRecord(key, t.id, action.collection, action.entityId);
      if (action.seq <= rec.seq) continue;
      applyAction(rec, action, this.#policies.for(action.collection));
      this.#cache.setDirty(key, t.id, rec);
      folded++;
    }
    this.#behind.set(t.id, t.head_seq);
    this.#logger.info(
      {
        tenantId: t.id,
        from: t.records_through,
        to: t.head_seq,
        folded,
        ms: Math.round(performance.now() - started),
      },
      'records recovered from the log tail',
    );
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
    // Pages are read from the table, which must hold every acknowledged action (and every record created since page 1).
    this.#checkpoint();
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
    // Recovery needs the log above the watermark: after a checkpoint the watermark is the head.
    this.#checkpoint();
    let tenants = 0;
    let actions = 0;
    let tombstones = 0;
    const seenSince = input.now - input.windowMs;
    for (const t of s.allTenantWatermarks.all()) {
      const lowest = s.horizon.pluck().get(t.id, seenSince) as number | null;
      if (lowest === null) continue; // nobody pulled within the window: keep everything
      const horizon = Math.min(lowest, t.head_seq, t.records_through);
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
      // Rare (a periodic job); simpler than finding the keys. Nothing is dirty right after the checkpoint.
      if (gone > 0) this.#cache.clearClean();
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
    allTenantWatermarks: p<[], TenantWatermarkRow>('SELECT id, head_seq, purged_through, records_through FROM tenants'),
    tenantWatermarkById: p<[number], TenantWatermarkRow>(
      'SELECT id, head_seq, purged_through, records_through FROM tenants WHERE id = ?',
    ),
    setRecordsThrough: p<[number, number]>('UPDATE tenants SET records_through = ? WHERE id = ?'),
    logTail: p<[number, number], string>('SELECT json FROM actions WHERE tenant = ? AND seq > ? ORDER BY seq').pluck(),
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

function recordKey(tenantId: number, collection: string, id: string): string {
  return `${tenantId}\u0000${collection}\u0000${id}`;
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
