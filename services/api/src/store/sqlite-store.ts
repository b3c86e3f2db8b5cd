/**
 * The embedded ApiStore on better-sqlite3. The main thread decides every push
 * from state it holds (tenant heads, client high-water marks, entity records
 * folded incrementally with libs/domain) and hands the resulting write-set to
 * a writer thread (sqlite-writer.ts), which commits it; a push is answered
 * only after that commit. Entity records are written behind by checkpoints
 * with a per-tenant watermark, and recovered on open by folding the log tail
 * above it. Reads (pull, snapshot, lookups) use this thread's own connection
 * and see committed data only. The main thread never writes to the file once
 * it is open, and never holds a transaction across an await.
 */
import { Buffer } from 'node:buffer';
import { closeSync, fdatasyncSync, openSync } from 'node:fs';
import { setImmediate as nextTurn } from 'node:timers/promises';
import Database from 'better-sqlite3';
import type { Statement } from 'better-sqlite3';
import { pino, type Logger } from 'pino';
import {
  ErrorCode,
  decodeStored,
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
  cloneRecord,
  decodeRecord,
  encodeRecord,
  recordWireJson,
  viewRecord,
  type CollectionPolicy,
  type EntityRec,
} from '@ferry/domain';
import { classifyClientSeq, clientSeqGapError, clientSeqReusedReason, withSeq } from './push-rules.js';
import { openSchema } from './sqlite-schema.js';
import { RecordCache, type CacheEntry, type Flush } from './record-cache.js';
import { CheckpointSchedule } from './checkpoint-schedule.js';
import { WriterClient, WriterFailure } from './writer-client.js';
import { recordStatements, writeRecords } from './write-records.js';
import type { CheckpointWrite, PushWrite } from './writer-protocol.js';
import type { RawActions } from '../push/raw-actions.js';
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
  /** For tests: the writer waits this long before each WAL sync (a push is answered only after it). */
  readonly walSyncDelayMs?: number;
  /**
   * A client pulling at an unchanged cursor has it (and its last-seen time)
   * rewritten at least this often, and at least every 60 s; keep it well inside
   * the retention window, or a client that keeps pulling looks away to the purge.
   */
  readonly cursorRefreshMs?: number;
}

/** Records per checkpoint write-set: small enough that pushes are not held up behind one for long. */
const CHECKPOINT_PART = 2000;
/** A cursor write is skipped when nothing changed and the last one is this recent (at most). */
const CURSOR_REFRESH_MS = 60_000;
/** Client states held in memory; beyond this the settled ones are dropped (and read back when needed). */
const MAX_CLIENTS_HELD = 100_000;

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
/** A tenant as the store decides pushes for it. */
interface TenantState {
  readonly id: number;
  readonly name: string;
  /** Last seq handed out: ahead of the file while pushes are in flight. */
  head: number;
  /** The head of the last push acknowledged (committed and synced): pulls serve nothing above it. */
  durable: number;
  /** False until a write-set inserting its row has been sent. */
  persisted: boolean;
}
/** A client's clientSeq high-water mark, as decided and as committed. */
interface ClientState {
  high: number;
  /** The high of the client's last committed push: below `high` while one is in flight. */
  committedHigh: number;
  /** clients.id, once known (read from the file). */
  ref: number | null;
}
/** What a clientSeq at or below the batch's starting high-water mark had, read from the file. */
type SettledBefore =
  | { readonly kind: 'action'; readonly id: string; readonly seq: number }
  | { readonly kind: 'rejection'; readonly id: string; readonly reason: string }
  | { readonly kind: 'purged' };

type Stmt<P extends unknown[], R = unknown> = Statement<P, R>;

export class SqliteStore implements ApiStore {
  /** This thread's connection: writes only while opening (schema, recovery), then reads. */
  readonly #db: Database.Database;
  readonly #path: string;
  readonly #policies: PolicyBook;
  readonly #purgeChunk: number;
  readonly #cursorRefreshMs: number;
  readonly #s: ReturnType<typeof prepareStatements>;
  readonly #cache: RecordCache;
  readonly #logger: Logger;
  readonly #autoCheckpoint: boolean;
  readonly #schedule: CheckpointSchedule;
  #writer: WriterClient | null = null;
  /** Tenant name → state; tenants are never deleted. */
  readonly #tenants = new Map<string, TenantState>();
  #maxTenantId = 0;
  /** `${tenant id}\0${client id}` → state. */
  readonly #clients = new Map<string, ClientState>();
  /** Last cursor written per (tenant id, client id), to skip redundant writes. */
  readonly #cursors = new Map<string, { cursor: number; at: number }>();
  /** Tenant id → head seq its in-memory records are folded through, for tenants whose watermark lags it. */
  readonly #behind = new Map<number, number>();
  /** Exclusive operations run one after another on this chain, each once nothing is in flight. */
  #chain: Promise<void> = Promise.resolve();
  /** Set while an exclusive operation is queued or running: pushes wait for it. */
  #gate: Promise<void> | null = null;
  #resyncing = false;
  #closing = false;
  /** The checkpoint being written, if any. */
  #checkpointRun: Promise<void> | null = null;

  private constructor(db: Database.Database, options: SqliteStoreOptions) {
    this.#db = db;
    this.#path = options.path;
    this.#policies = options.policies ?? new PolicyBook();
    this.#purgeChunk = options.purgeChunk ?? 10_000;
    this.#cursorRefreshMs = Math.min(CURSOR_REFRESH_MS, options.cursorRefreshMs ?? CURSOR_REFRESH_MS);
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
  }

  /**
   * Opens the file, recovers the records the last run folded but did not
   * checkpoint (and checkpoints them, before returning), then starts the writer.
   */
  static open(options: SqliteStoreOptions): SqliteStore {
    const db = new Database(options.path);
    try {
      openSchema(db);
      const store = new SqliteStore(db, options);
      store.#loadCounters();
      store.#recover();
      store.#checkpointWhileOpening();
      syncWal(options.path);
      store.#writer = new WriterClient({ path: options.path, syncDelayMs: options.walSyncDelayMs ?? 0 });
      return store;
    } catch (err) {
      db.close();
      throw err;
    }
  }

  push(tenant: TenantId, input: PushInput): Promise<PushOutcome> {
    return this.#pushNow(tenant, input, false);
  }

  /** Writes every dirty record and the watermarks (see `#checkpoint`); resolves once all of it committed. */
  checkpoint(): Promise<void> {
    return this.#exclusive(() => this.#checkpoint());
  }

  pull(tenant: TenantId, input: PullInput): Promise<PullPage> {
    return this.#guard(() => this.#pull(tenant, input));
  }

  snapshot(tenant: TenantId, input: SnapshotInput): Promise<SnapshotPage> {
    // Pages are read from the table, which must hold every acknowledged action (and every record created since page 1).
    return this.#exclusive(async () => {
      await this.#checkpoint();
      return this.#readSnapshot(tenant, input);
    });
  }

  purge(input: PurgeInput): Promise<PurgeReport> {
    return this.#exclusive(async () => {
      // Recovery needs the log above the watermark: after a checkpoint the watermark is the head.
      await this.#checkpoint();
      const report = await this.#write({
        op: 'purge',
        now: input.now,
        windowMs: input.windowMs,
        chunk: this.#purgeChunk,
      });
      if (report === undefined) throw new Error('store: the writer sent no purge report');
      // Rare (a periodic job); simpler than finding the keys. Nothing is dirty right after the checkpoint.
      if (report.tombstones > 0) this.#cache.clearClean();
      return report;
    });
  }

  stats(tenant: TenantId): Promise<TenantStats> {
    return this.#exclusive(async () => {
      await this.#checkpoint(); // the entity count is read from the table
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
    if (this.#closing) return this.#chain;
    const done = this.#exclusive(async () => {
      try {
        if (this.#autoCheckpoint) await this.#checkpoint();
      } finally {
        await this.#writer?.close();
        this.#db.close();
      }
    });
    this.#closing = true;
    return done;
  }

  /** Runs a synchronous store operation; storage trouble becomes `unavailable` (retryable). */
  #guard<T>(fn: () => T): Promise<T> {
    if (this.#closing) return Promise.reject(closedError());
    try {
      return Promise.resolve(fn());
    } catch (err) {
      return Promise.reject(mapSqliteError(err));
    }
  }

  /**
   * Runs `fn` once every write sent so far is settled, with pushes held back
   * until it is done: snapshot, stats, purge, close and resynchronising need
   * the file to hold everything decided.
   */
  #exclusive<T>(fn: () => T | Promise<T>): Promise<T> {
    if (this.#closing) return Promise.reject(closedError());
    const run = this.#chain.then(async () => {
      await this.#writer?.drain();
      try {
        return await fn();
      } catch (err) {
        throw mapSqliteError(err);
      }
    });
    const settled = run.then(
      () => undefined,
      () => undefined,
    );
    this.#chain = settled;
    this.#gate = settled;
    void settled.then(() => {
      if (this.#chain === settled) this.#gate = null;
    });
    return run;
  }

  /** Sends a write-set; a failure puts the store into resynchronisation and is answered as `unavailable`. */
  #write(request: Parameters<WriterClient['post']>[0], transfer?: ArrayBuffer[]): ReturnType<WriterClient['post']> {
    const writer = this.#writer;
    if (writer === null) return Promise.reject(closedError());
    return writer.post(request, transfer).catch((err: unknown) => {
      this.#writeFailed(err);
      throw mapWriterError(err);
    });
  }

  /**
   * A write-set did not commit, so what this thread decided after it is void
   * (the writer refuses everything until reset). Once every write in flight
   * has settled: reset the writer and re-read the state from the file, as
   * opening does.
   */
  #writeFailed(err: unknown): void {
    if (this.#resyncing || this.#closing) return;
    this.#resyncing = true;
    this.#logger.error({ err }, 'the state held in memory is void; re-reading it from the file');
    void this.#exclusive(async () => {
      const writer = this.#writer;
      if (writer === null) return;
      // A checkpoint between its parts would go on sending records decided before the failure.
      await this.#checkpointRun?.catch(() => undefined);
      await writer.drain();
      writer.restart(); // only if its thread died
      // The writer keeps refusing until the reset below, so nothing decided on the void
      // state (a push, a checkpoint part) can commit meanwhile. What the file holds is
      // served again: make sure it is on disk first (a sync may be what failed).
      syncWal(this.#path);
      this.#tenants.clear();
      this.#clients.clear();
      this.#cursors.clear();
      this.#cache.clear();
      this.#behind.clear();
      this.#schedule.reset();
      this.#loadCounters();
      this.#recover();
      await writer.post({ op: 'reset' });
    })
      .then(() => {
        this.#resyncing = false;
      })
      .catch((e: unknown) => {
        this.#logger.error({ err: e }, 'resynchronising the store failed; retrying in a second');
        this.#resyncing = false;
        // Still void: stay refusing (the writer has not been reset) and try again.
        setTimeout(() => this.#writeFailed(e), 1000).unref();
      });
  }

  #loadCounters(): void {
    this.#maxTenantId = (this.#s.maxTenantId.get() as number | null) ?? 0;
  }

  #tenant(name: string): TenantState {
    let t = this.#tenants.get(name);
    if (t === undefined) {
      const row = this.#s.tenantByName.get(name);
      t =
        row === undefined
          ? { id: ++this.#maxTenantId, name, head: 0, durable: 0, persisted: false }
          : { id: row.id, name, head: row.head_seq, durable: row.head_seq, persisted: true };
      this.#tenants.set(name, t);
    }
    return t;
  }

  #client(tenantId: number, clientId: string): ClientState {
    const key = `${tenantId}\u0000${clientId}`;
    let c = this.#clients.get(key);
    if (c === undefined) {
      if (this.#clients.size >= MAX_CLIENTS_HELD) {
        // A client with a push in flight is ahead of the file: only the others can be read back from it.
        for (const [k, held] of this.#clients) if (held.high === held.committedHigh) this.#clients.delete(k);
      }
      const row = this.#s.clientByKey.get(tenantId, clientId);
      c =
        row === undefined
          ? { high: 0, committedHigh: 0, ref: null }
          : { high: row.high_client_seq, committedHigh: row.high_client_seq, ref: row.id };
      this.#clients.set(key, c);
    }
    return c;
  }

  #pushNow(tenant: TenantId, input: PushInput, exclusive: boolean): Promise<PushOutcome> {
    if (this.#closing) return Promise.reject(closedError());
    if (!exclusive && this.#gate !== null) return this.#gate.then(() => this.#pushNow(tenant, input, false));
    try {
      const t = this.#tenant(tenant);
      const c = this.#client(t.id, input.clientId);
      if (!exclusive && c.high !== c.committedHigh && input.actions.some((a) => a.clientSeq <= c.high)) {
        // A retry of actions still in flight: their outcomes are read from the file once they committed.
        return this.#exclusive(() => this.#pushNow(tenant, input, true));
      }
      return this.#decide(t, c, input);
    } catch (err) {
      return Promise.reject(mapSqliteError(err));
    }
  }

  /**
   * Decides the batch against the held state, applies it there and sends the
   * write-set; resolves once it committed. Everything that can fail (a gap, a
   * custom-merge collection, reading the file) happens before the held state
   * moves: a failed batch changes nothing.
   */
  #decide(t: TenantState, c: ClientState, input: PushInput): Promise<PushOutcome> {
    const tenantId = t.id;
    const actions = input.actions;
    const n = actions.length;
    const startHigh = c.high;

    // 1. clientSeqs and policies.
    const policies: CollectionPolicy[] = new Array<CollectionPolicy>(n);
    let high = startHigh;
    let seen = 0;
    for (let i = 0; i < n; i++) {
      const action = actions[i] as Action;
      const kind = classifyClientSeq(high, action.clientSeq);
      if (kind === 'gap') throw clientSeqGapError(i, action, high);
      const policy = this.#policies.for(action.collection);
      policies[i] = policy;
      if (kind === 'seen') {
        if (action.clientSeq <= startHigh) seen++;
        continue;
      }
      high = action.clientSeq;
      if (policy.kind === 'custom') {
        // Checkpoints cannot persist a custom merge's history (libs/domain record-codec.ts refuses it).
        throw new Error(`${action.collection}: records of custom-merge collections cannot be stored by this store`);
      }
    }

    // 2. Reads: every record the batch touches (reject-stale ones as working copies, so the held ones
    //    stay untouched until the batch is decided), and the outcomes of retried clientSeqs.
    const keys: string[] = new Array<string>(n);
    const fresh: (string | EntityRec)[] = [];
    const records = this.#loadRecords(tenantId, actions, policies, keys, fresh);
    const before = seen > 0 ? this.#readSettled(tenantId, input.clientId, c, actions, startHigh) : null;

    // 3. Decide and fold; nothing here reads the file or throws by design.
    const firstSeq = t.head + 1;
    let head = t.head;
    high = startHigh;
    const results: PushResult[] = new Array<PushResult>(n);
    /** Per clientSeq settled in this batch (startHigh + 1 + k): the index of its result. */
    const settledHere: number[] = [];
    const raw = input.raw ?? null;
    /** Per accepted action: clientSeq, start, end (see PushWrite.rows). */
    const rows = new Float64Array(n * 3);
    let stored = 0;
    const texts: string[] = [];
    const rejections: (string | number)[] = [];
    const changed: string[] = [];
    let foldFailed = false;
    for (let i = 0; i < n; i++) {
      const action = actions[i] as Action;
      const policy = policies[i] as CollectionPolicy;
      const key = keys[i] as string;
      const rec = records.get(key) as EntityRec;
      if (action.clientSeq <= high) {
        results[i] =
          action.clientSeq > startHigh
            ? this.#settledInBatch(
                action,
                results[settledHere[action.clientSeq - startHigh - 1] as number] as PushResult,
                rec,
              )
            : this.#settledBefore(action, before?.get(action.clientSeq) ?? { kind: 'purged' }, policy, rec);
        continue;
      }
      high = action.clientSeq;
      settledHere.push(i);
      if (policy.kind === 'reject-stale') {
        const check = checkBaseVersion(rec, action, viewRecord);
        if (!check.ok) {
          rejections.push(action.clientSeq, action.id, check.reason);
          results[i] = { id: action.id, status: PushStatus.Rejected, reason: check.reason, current: check.current };
          continue;
        }
      }
      const seq = ++head;
      const storedAction = withSeq(action, seq);
      const start = raw === null ? -1 : (raw.starts[i] as number);
      rows[stored * 3] = action.clientSeq;
      rows[stored * 3 + 1] = start;
      if (start >= 0) rows[stored * 3 + 2] = (raw as RawActions).ends[i] as number;
      else texts.push(JSON.stringify({ ...action, seq }));
      stored++;
      changed.push(key);
      try {
        applyAction(rec, storedAction, policy);
      } catch (err) {
        // The log is the truth: store the batch, then re-derive the records from the file.
        if (!foldFailed)
          this.#logger.error({ err, tenantId }, 'folding a push failed; re-deriving the records from the log');
        foldFailed = true;
      }
      results[i] = { id: action.id, status: PushStatus.Accepted, seq };
    }

    // Decided: the held state moves with the batch. reject-stale copies replace the held records.
    for (const key of changed) this.#cache.setDirty(key, tenantId, records.get(key) as EntityRec);
    // Records read for this batch and left unchanged are held clean (their rows are current).
    for (let i = 0; i < fresh.length; i += 2) {
      const key = fresh[i] as string;
      if (!this.#cache.has(key)) this.#cache.setClean(key, fresh[i + 1] as EntityRec);
    }
    const write: { -readonly [K in keyof Omit<PushWrite, 'n'>]: PushWrite[K] } = {
      op: 'push',
      tenantId,
      newTenant: t.persisted ? null : t.name,
      clientId: input.clientId,
      high,
      now: input.now,
      firstSeq,
      rows: rows.slice(0, stored * 3),
      bytes: null,
      texts,
      rejections,
    };
    t.persisted = true;
    t.head = head;
    c.high = high;
    if (stored > 0) this.#behind.set(tenantId, head);
    const transfer: ArrayBuffer[] = [write.rows.buffer as ArrayBuffer];
    if (raw !== null && texts.length < stored) {
      // The writer gets its own copy of the request (the NATS buffer is not ours to hand over, and
      // Buffer#slice would share it); Uint8Array#slice copies into an ArrayBuffer of its own, moved, not cloned.
      const copy = Uint8Array.prototype.slice.call(raw.bytes);
      write.bytes = copy.buffer;
      transfer.push(copy.buffer);
    }
    const committed = this.#write(write, transfer).then(() => {
      if (high > c.committedHigh) c.committedHigh = high;
      if (head > t.durable) t.durable = head;
      // A checkpoint this makes due starts after the reply is sent.
      if (stored > 0) this.#schedule.noteFolded(stored, this.#cache.dirtySize);
      return { results, headSeq: head, stored };
    });
    if (foldFailed) void committed.finally(() => this.#writeFailed(new Error('a fold failed'))).catch(() => undefined);
    return committed;
  }

  /**
   * The records of every action in the batch, keyed by record key (`keys` is
   * filled per action): held ones from memory, the rest read from the table in
   * one query per collection (listed in `fresh` as key, record, to be held
   * once the batch is decided). reject-stale ones are copies.
   */
  #loadRecords(
    tenantId: number,
    actions: readonly Action[],
    policies: readonly CollectionPolicy[],
    keys: string[],
    fresh: (string | EntityRec)[],
  ): Map<string, EntityRec> {
    const records = new Map<string, EntityRec>();
    let missing: Map<string, string[]> | null = null;
    for (let i = 0; i < actions.length; i++) {
      const action = actions[i] as Action;
      const key = recordKey(tenantId, action.collection, action.entityId);
      keys[i] = key;
      if (records.has(key)) continue;
      const held = this.#cache.get(key);
      if (held !== undefined) {
        records.set(key, (policies[i] as CollectionPolicy).kind === 'reject-stale' ? cloneRecord(held) : held);
        continue;
      }
      missing ??= new Map();
      let ids = missing.get(action.collection);
      if (ids === undefined) missing.set(action.collection, (ids = []));
      ids.push(action.entityId);
      records.set(key, NOT_LOADED);
    }
    if (missing === null) return records;
    for (const [collection, ids] of missing) {
      // Not held, so its row (or its absence) is current: a record is held until the checkpoint writing it committed.
      const rows = new Map<string, string>();
      for (const [id, json] of this.#s.entitiesIn.iterate(tenantId, collection, JSON.stringify(ids)))
        rows.set(id, json);
      const copy = this.#policies.for(collection).kind === 'reject-stale';
      for (const id of ids) {
        // A lone surrogate may not survive the trip through SQLite's JSON: ids with surrogates are looked up alone.
        const json = SURROGATE.test(id) ? this.#s.entityJson.get(tenantId, collection, id) : rows.get(id);
        const rec = json === undefined ? emptyRecord(collection, id) : decodeRecord(json, collection, id);
        const key = recordKey(tenantId, collection, id);
        fresh.push(key, rec);
        records.set(key, copy ? cloneRecord(rec) : rec);
      }
    }
    return records;
  }

  /** The stored outcome of each clientSeq of the batch at or below `startHigh`. */
  #readSettled(
    tenantId: number,
    clientId: string,
    c: ClientState,
    actions: readonly Action[],
    startHigh: number,
  ): Map<number, SettledBefore> {
    const s = this.#s;
    c.ref ??= s.clientRef.get(tenantId, clientId) ?? null;
    if (c.ref === null) throw new Error(`store: client ${clientId} has a high-water mark but no row`);
    const out = new Map<number, SettledBefore>();
    for (const action of actions) {
      const cs = action.clientSeq;
      if (cs > startHigh || out.has(cs)) continue;
      const prior = s.actionByClientSeq.get({ tenant: tenantId, client: c.ref, cs });
      if (prior !== undefined) {
        out.set(cs, { kind: 'action', id: prior.id, seq: prior.seq });
        continue;
      }
      const rejection = s.rejectionByClientSeq.get(tenantId, c.ref, cs);
      // Neither: settled so long ago that retention purged its log entry.
      out.set(cs, rejection === undefined ? { kind: 'purged' } : { kind: 'rejection', ...rejection });
    }
    return out;
  }

  /** A clientSeq at or below the high-water mark the batch started from: replay the outcome it had. */
  #settledBefore(action: Action, prior: SettledBefore, policy: CollectionPolicy, rec: EntityRec): PushResult {
    switch (prior.kind) {
      case 'action':
        if (prior.id === action.id) return { id: action.id, status: PushStatus.Duplicate, seq: prior.seq };
        return {
          id: action.id,
          status: PushStatus.Rejected,
          reason: clientSeqReusedReason(action.clientSeq, prior.id),
        };
      case 'rejection':
        return rejectedAgain(action, prior, policy, rec);
      case 'purged':
        // It is not applied again.
        return { id: action.id, status: PushStatus.Duplicate };
    }
  }

  /** A clientSeq settled earlier in this same batch, with the result it got there. */
  #settledInBatch(action: Action, prior: PushResult, rec: EntityRec): PushResult {
    if (prior.status === PushStatus.Accepted) {
      if (prior.id === action.id) return { id: action.id, status: PushStatus.Duplicate, seq: prior.seq };
      return { id: action.id, status: PushStatus.Rejected, reason: clientSeqReusedReason(action.clientSeq, prior.id) };
    }
    return rejectedAgain(
      action,
      { id: prior.id, reason: prior.reason as string },
      this.#policies.for(action.collection),
      rec,
    );
  }

  /** The current record: held in memory, else read from the table and held clean (recovery). */
  #heldRecord(key: string, tenantId: number, collection: string, id: string): EntityRec {
    let rec = this.#cache.get(key);
    if (rec === undefined) {
      // Not held, so its row (or its absence) is current: a record is held until the checkpoint writing it committed.
      const json = this.#s.entityJson.get(tenantId, collection, id);
      rec = json === undefined ? emptyRecord(collection, id) : decodeRecord(json, collection, id);
      this.#cache.setClean(key, rec);
    }
    return rec;
  }

  /** Serialises `entries[from, to)` into one checkpoint write-set, with `watermarks` (the last part's). */
  #checkpointPart(
    entries: readonly CacheEntry[],
    from: number,
    to: number,
    watermarks: number[],
  ): { write: Omit<CheckpointWrite, 'n'>; flush: Flush } {
    const cache = this.#cache;
    const count = to - from;
    const meta = new Float64Array(count * 4);
    const collections = new Array<string>(count);
    const entityIds = new Array<string>(count);
    const flushed: CacheEntry[] = new Array<CacheEntry>(count);
    const recs = new Array<EntityRec>(count);
    const versions = new Array<number>(count);
    let json = Buffer.allocUnsafeSlow(count * 512);
    let end = 0;
    for (let i = 0; i < count; i++) {
      const e = entries[from + i] as CacheEntry;
      const rec = e.rec;
      const text = encodeRecord(rec);
      if (json.length - end < text.length * 3) {
        // Room for the worst case (3 bytes per UTF-16 unit); a fresh, unpooled buffer, as it is moved.
        const bigger = Buffer.allocUnsafeSlow(Math.max(json.length * 2, end + text.length * 3));
        json.copy(bigger, 0, 0, end);
        json = bigger;
      }
      end += json.write(text, end);
      cache.serialised(e);
      meta[i * 4] = e.tenantId;
      meta[i * 4 + 1] = rec.seq;
      meta[i * 4 + 2] = rec.deleted === null ? 0 : 1;
      meta[i * 4 + 3] = end;
      collections[i] = rec.collection;
      entityIds[i] = rec.id;
      flushed[i] = e;
      recs[i] = rec;
      versions[i] = rec.version;
    }
    return {
      write: { op: 'checkpoint', meta, collections, entityIds, json: json.buffer, watermarks },
      flush: { entries: flushed, recs, versions },
    };
  }

  /** Takes the dirty records and the watermarks (the heads they are folded through) for a checkpoint. */
  #takeCheckpoint(): { entries: CacheEntry[]; watermarks: number[] } {
    const entries = this.#cache.takeDirty();
    const watermarks: number[] = [];
    for (const [tenantId, head] of this.#behind) watermarks.push(tenantId, head);
    this.#behind.clear();
    this.#schedule.reset();
    return { entries, watermarks };
  }

  /**
   * Writes every dirty record and, for each tenant they belong to, the
   * watermark (the head they are folded through): once it committed, the
   * table holds every action at or below the watermark. The records go in
   * parts of CHECKPOINT_PART, each serialised just before it is sent and
   * committed with whatever pushes the writer has then, so neither thread
   * stops for a whole checkpoint; the watermark goes with the last part, which
   * the writer commits after every push decided before the checkpoint. A
   * record serialised late may hold actions above the watermark: recovery
   * skips what a record's own seq covers. Checkpoints commit with
   * synchronous=NORMAL: losing one to a power cut loses its watermark with it,
   * and recovery folds the log again.
   */
  #checkpoint(): Promise<void> {
    const running = this.#checkpointRun;
    if (running !== null) return running.then(() => this.#checkpoint());
    if (this.#behind.size === 0 && this.#cache.dirtySize === 0) return Promise.resolve();
    const run = this.#runCheckpoint().finally(() => {
      this.#checkpointRun = null;
      // Records dirtied meanwhile may already be due.
      this.#schedule.noteFolded(0, this.#cache.dirtySize);
    });
    this.#checkpointRun = run;
    return run;
  }

  async #runCheckpoint(): Promise<void> {
    const started = performance.now();
    const { entries, watermarks } = this.#takeCheckpoint();
    const commits: Promise<void>[] = [];
    for (let from = 0; ; from += CHECKPOINT_PART) {
      const to = Math.min(from + CHECKPOINT_PART, entries.length);
      const last = to === entries.length;
      const { write, flush } = this.#checkpointPart(entries, from, to, last ? watermarks : []);
      const committed = this.#write(write, [write.meta.buffer as ArrayBuffer, write.json]).then(() =>
        this.#cache.flushed(flush),
      );
      // Awaited below (Promise.all); a part failing meanwhile must not count as an unhandled rejection.
      committed.catch(() => undefined);
      commits.push(committed);
      if (last) break;
      await nextTurn(); // pushes that arrived meanwhile are decided (and sent) between the parts
    }
    await Promise.all(commits);
    this.#logger.debug(
      { records: entries.length, tenants: watermarks.length / 2, ms: Math.round(performance.now() - started) },
      'records checkpoint',
    );
  }

  /** The same in one transaction on this thread's connection, while opening (before the writer starts). */
  #checkpointWhileOpening(): void {
    if (this.#behind.size === 0 && this.#cache.dirtySize === 0) return;
    const { entries, watermarks } = this.#takeCheckpoint();
    const { write, flush } = this.#checkpointPart(entries, 0, entries.length, watermarks);
    const statements = recordStatements(this.#db);
    this.#db.pragma('synchronous = NORMAL');
    try {
      this.#db.transaction(() => writeRecords(statements, write)).immediate();
    } finally {
      this.#db.pragma('synchronous = FULL');
    }
    this.#cache.flushed(flush);
  }

  #backgroundCheckpoint(): void {
    // An exclusive operation checkpoints (or re-reads everything) itself; a running checkpoint re-arms the schedule.
    if (this.#closing || this.#gate !== null || this.#checkpointRun !== null) return;
    this.#checkpoint().catch((err: unknown) => {
      // The store re-reads its state from the file; the records come back from the log.
      this.#logger.warn({ err }, 'records checkpoint failed');
    });
  }

  /** Every tenant whose watermark lags its head gets its log tail folded (on open, and after a failed write). */
  #recover(): void {
    for (const t of this.#s.allTenantWatermarks.all()) {
      if (t.records_through < t.head_seq) this.#foldTail(t);
    }
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
    this.#schedule.noteFolded(folded, this.#cache.dirtySize);
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
    // Committed rows of a push not yet answered may not be on disk yet (writer.ts syncs before answering):
    // they are not served, so a power cut cannot take back what a client has pulled.
    const held = this.#tenants.get(tenant);
    const head = row === undefined ? 0 : held === undefined ? row.head_seq : Math.min(row.head_seq, held.durable);
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
      for (const [seq, json] of this.#s.pullRows.iterate(
        row.id,
        input.since,
        Math.min(input.limit, head - input.since),
      )) {
        if (actions.length > 0 && bytes + json.length > input.maxBytes) break;
        bytes += json.length + 1;
        actions.push(json as StoredActionJson);
        next = seq;
      }
    }
    return { actions, next, more: next < head, resetRequired: false, headSeq: head };
  }

  /**
   * Cursors only feed retention, so they are written behind the reply, without
   * the commit fsync: a lost cursor makes the next purge more conservative,
   * nothing worse. A purge first waits for the ones sent before it.
   */
  #recordCursor(tenantId: number, clientId: ClientId, cursor: number, now: number): void {
    const key = `${tenantId}:${clientId}`;
    const last = this.#cursors.get(key);
    if (last !== undefined && last.cursor === cursor && now - last.at < this.#cursorRefreshMs) return;
    this.#cursors.set(key, { cursor, at: now });
    this.#write({ op: 'cursor', tenantId, clientId, cursor, now }).catch((err: unknown) => {
      this.#cursors.delete(key);
      this.#logger.warn({ err, tenantId }, 'cursor write failed');
    });
  }

  #readSnapshot(tenant: string, input: SnapshotInput): SnapshotPage {
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
    for (const [collection, id, row] of rows) {
      const json = recordWireJson(row, collection, id);
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
}

function prepareStatements(db: Database.Database) {
  const p = <P extends unknown[], R = unknown>(sql: string): Stmt<P, R> => db.prepare<P, R>(sql);
  return {
    tenantByName: p<[string], TenantRow>('SELECT id, head_seq, purged_through FROM tenants WHERE name = ?'),
    maxTenantId: p<[]>('SELECT MAX(id) FROM tenants').pluck(),
    allTenantWatermarks: p<[], TenantWatermarkRow>('SELECT id, head_seq, purged_through, records_through FROM tenants'),
    logTail: p<[number, number], string>('SELECT json FROM actions WHERE tenant = ? AND seq > ? ORDER BY seq').pluck(),
    clientByKey: p<[number, string], ClientRow>(
      'SELECT id, high_client_seq FROM clients WHERE tenant = ? AND client_id = ?',
    ),
    clientRef: p<[number, string], number>('SELECT id FROM clients WHERE tenant = ? AND client_id = ?').pluck(),
    // The run holding the clientSeq (the last one starting at or below it), and the row it points at.
    actionByClientSeq: p<[{ tenant: number; client: number; cs: number }], { seq: number; id: string }>(
      `SELECT a.seq AS seq, json_extract(a.json, '$.id') AS id
       FROM client_runs r JOIN actions a ON a.tenant = r.tenant AND a.seq = r.first_seq + (@cs - r.first_client_seq)
       WHERE r.tenant = @tenant AND r.client = @client AND r.last_client_seq >= @cs
         AND r.first_client_seq = (SELECT MAX(first_client_seq) FROM client_runs
                                   WHERE tenant = @tenant AND client = @client AND first_client_seq <= @cs)
         AND a.client = @client AND a.client_seq = @cs`,
    ),
    rejectionByClientSeq: p<[number, number, number], { id: string; reason: string }>(
      'SELECT id, reason FROM rejections WHERE tenant = ? AND client = ? AND client_seq = ?',
    ),
    entitiesIn: p<[number, string, string], [string, string]>(
      'SELECT entity_id, json FROM entities WHERE tenant = ? AND collection = ? AND entity_id IN (SELECT value FROM json_each(?))',
    ).raw(),
    entityJson: p<[number, string, string], string>(
      'SELECT json FROM entities WHERE tenant = ? AND collection = ? AND entity_id = ?',
    ).pluck(),
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
    countActions: p<[number]>('SELECT COUNT(*) FROM actions WHERE tenant = ?'),
    countEntities: p<[number]>('SELECT COUNT(*) FROM entities WHERE tenant = ?'),
  };
}

/** A retried clientSeq that was rejected: rejected again (reject-stale: with the entity as it is now). */
function rejectedAgain(
  action: Action,
  rejection: { readonly id: string; readonly reason: string },
  policy: CollectionPolicy,
  rec: EntityRec,
): PushResult {
  if (rejection.id !== action.id) {
    return {
      id: action.id,
      status: PushStatus.Rejected,
      reason: clientSeqReusedReason(action.clientSeq, rejection.id),
    };
  }
  const result: PushResult = { id: action.id, status: PushStatus.Rejected, reason: rejection.reason };
  if (policy.kind === 'reject-stale') result.current = viewRecord(rec);
  return result;
}

const SURROGATE = /[\uD800-\uDFFF]/;

/** Placeholder while a batch's missing records are read. */
const NOT_LOADED = emptyRecord('', '');

function recordKey(tenantId: number, collection: string, id: string): string {
  return `${tenantId}\u0000${collection}\u0000${id}`;
}

/**
 * Syncs the store's WAL to disk, if it has one: what the file holds is then
 * durable whatever the last process did before it stopped (its writer commits
 * with synchronous=NORMAL and syncs before answering; a crash can leave
 * committed frames that were never synced).
 */
function syncWal(path: string): void {
  let fd: number;
  try {
    fd = openSync(`${path}-wal`, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  try {
    fdatasyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function closedError(): FerryError {
  return new FerryError(ErrorCode.Unavailable, 'store is closed');
}

/** SQLite codes that mean "try again later" rather than "this request is wrong". */
const TRANSIENT_SQLITE = /^SQLITE_(BUSY|LOCKED|FULL|IOERR|CANTOPEN|PROTOCOL|READONLY)/;

function mapSqliteError(err: unknown): Error {
  if (err instanceof FerryError) return err;
  if (err instanceof Database.SqliteError && TRANSIENT_SQLITE.test(err.code)) {
    return new FerryError(ErrorCode.Unavailable, `store unavailable (${err.code})`, { cause: err });
  }
  if (err instanceof TypeError && /database connection is not open/.test(err.message)) {
    return closedError();
  }
  return err instanceof Error ? err : new Error(String(err));
}

/** A write-set that did not commit: retryable when storage said so, or when the writer thread died. */
function mapWriterError(err: unknown): Error {
  if (err instanceof WriterFailure && (err.code === null || TRANSIENT_SQLITE.test(err.code))) {
    return new FerryError(ErrorCode.Unavailable, `store unavailable (${err.code ?? err.message})`, { cause: err });
  }
  return err instanceof Error ? err : new Error(String(err));
}
