/**
 * The SqliteStore's writer (run on its own thread by sqlite-writer.ts): the
 * only connection that writes to the store file once it is open. It applies
 * the write-sets the store decided, in arrival order, grouping whatever
 * arrived together into one transaction, and answers each message once its
 * transaction committed; a push only once the WAL holding it is also synced
 * to disk (see `#sync`). After a failed transaction it refuses everything
 * until the store has re-read the file and sent `reset`, so it never applies
 * a write-set decided on top of one that was rolled back.
 */
import { closeSync, fdatasync, openSync } from 'node:fs';
import Database from 'better-sqlite3';
import { recordStatements, writeRecords } from './write-records.js';
import type {
  CheckpointWrite,
  CursorWrite,
  PurgeResult,
  PurgeWrite,
  PushWrite,
  WriterData,
  WriterReply,
  WriterRequest,
} from './writer-protocol.js';

type Synchronous = 'FULL' | 'NORMAL';
type Failure = { readonly code: string | null; readonly message: string };

/** How the writer reaches the store and the disk; the worker entry (sqlite-writer.ts) passes the real ones. */
export interface WriterIo {
  /** Sends a reply to the store. */
  post(reply: WriterReply): void;
  /** Syncs the WAL file's data to disk (fdatasync), then calls `done`. Defaults to doing just that. */
  syncWal?(walPath: string, done: (err: Error | null) => void): void;
}

export class Writer {
  readonly #db: Database.Database;
  readonly #io: WriterIo;
  readonly #walPath: string;
  readonly #syncDelayMs: number;
  readonly #s: ReturnType<typeof prepareStatements>;
  /** (tenant id, client id) → clients.id, for clients this connection has seen committed or written. */
  readonly #clientRefs = new Map<string, number>();
  #queue: WriterRequest[] = [];
  #scheduled = false;
  /** Why the last transaction failed; set until `reset`. */
  #failed: Failure | null = null;
  #synchronous: Synchronous = 'NORMAL';
  /** The WAL file, opened once something was committed, to sync it. */
  #walFd: number | null = null;
  /** Pushes committed since the last WAL sync started: answered once a sync that starts after them is done. */
  #unsynced: number[] = [];
  #syncing = false;
  /** A close waiting for the last sync. */
  #closing: number | null = null;

  constructor(data: WriterData, io: WriterIo) {
    this.#db = new Database(data.path);
    this.#io = io;
    this.#walPath = `${data.path}-wal`;
    this.#syncDelayMs = data.syncDelayMs ?? 0;
    // The store ran the schema and its pragmas; these are per connection. NORMAL: commits do not sync
    // the WAL themselves; the pushes among them are answered after `#sync` did (checkpoints and cursors
    // can be redone, and are answered at once).
    this.#db.pragma('synchronous = NORMAL');
    this.#db.pragma('busy_timeout = 5000');
    this.#s = prepareStatements(this.#db);
  }

  receive(message: WriterRequest): void {
    this.#queue.push(message);
    if (this.#scheduled) return;
    this.#scheduled = true;
    // Everything that arrives before this runs joins the same transaction.
    setImmediate(() => this.#flush());
  }

  #flush(): void {
    this.#scheduled = false;
    const queue = this.#queue;
    this.#queue = [];
    let group: (PushWrite | CheckpointWrite | CursorWrite)[] = [];
    for (const m of queue) {
      if (m.op === 'push' || m.op === 'checkpoint' || m.op === 'cursor') {
        group.push(m);
        continue;
      }
      this.#commitGroup(group);
      group = [];
      this.#single(m);
    }
    this.#commitGroup(group);
  }

  #commitGroup(group: (PushWrite | CheckpointWrite | CursorWrite)[]): void {
    if (group.length === 0) return;
    if (this.#failed === null) {
      this.#setSynchronous('NORMAL');
      try {
        this.#db
          .transaction(() => {
            for (const m of group) {
              if (m.op === 'push') this.#push(m);
              else if (m.op === 'checkpoint') this.#checkpoint(m);
              else this.#s.upsertCursor.run(m.tenantId, m.clientId, m.cursor, m.now);
            }
          })
          .immediate();
      } catch (err) {
        this.#fail(err);
      }
    }
    const failed = this.#failed;
    for (const m of group) {
      if (failed === null && m.op === 'push') this.#unsynced.push(m.n);
      else this.#answer(m.n, failed);
    }
    if (this.#unsynced.length > 0) this.#sync();
  }

  /**
   * Makes the pushes committed so far durable: fdatasync of the WAL, on the
   * thread pool, while this thread goes on with the next transactions (one
   * sync covers every push committed before it started). Until it is done
   * they are not answered. With synchronous=NORMAL SQLite keeps the file
   * consistent across a power cut but may lose the last commits; a commit
   * whose WAL frames were synced after it is not lost, which is what
   * synchronous=FULL gives too (its commit syncs the WAL before returning).
   */
  #sync(): void {
    if (this.#syncing) return;
    const covered = this.#unsynced;
    this.#unsynced = [];
    this.#syncing = true;
    const done = (err: Error | null) => {
      this.#syncing = false;
      // A failed sync leaves committed pushes of unknown durability: unanswered as stored, and nothing more is written.
      if (err !== null) this.#fail(err);
      const failure = err === null ? null : this.#failed;
      for (const n of covered) this.#answer(n, failure);
      if (this.#unsynced.length > 0 && err !== null) {
        // After a failed fsync the kernel may have dropped dirty pages that later
        // frames depend on: a later sync that succeeds proves nothing for them.
        const stranded = this.#unsynced;
        this.#unsynced = [];
        for (const n of stranded) this.#answer(n, this.#failed);
      }
      if (this.#unsynced.length > 0) this.#sync();
      else if (this.#closing !== null) this.#close(this.#closing);
    };
    const sync = () => {
      if (this.#io.syncWal !== undefined) {
        this.#io.syncWal(this.#walPath, done);
        return;
      }
      try {
        this.#walFd ??= openSync(this.#walPath, 'r');
        fdatasync(this.#walFd, done);
      } catch (err) {
        done(err instanceof Error ? err : new Error(String(err)));
      }
    };
    if (this.#syncDelayMs > 0) setTimeout(sync, this.#syncDelayMs);
    else sync();
  }

  #single(m: PurgeWrite | { op: 'reset' | 'close'; n: number }): void {
    switch (m.op) {
      case 'reset':
        this.#failed = null;
        this.#clientRefs.clear();
        this.#answer(m.n, null);
        return;
      case 'close':
        if (this.#syncing) this.#closing = m.n;
        else this.#close(m.n);
        return;
      case 'purge': {
        if (this.#failed !== null) return this.#answer(m.n, this.#failed);
        let purge: PurgeResult | undefined;
        try {
          this.#setSynchronous('FULL');
          purge = this.#purge(m);
        } catch (err) {
          this.#fail(err);
        }
        this.#answer(m.n, this.#failed, purge);
        return;
      }
    }
  }

  #close(n: number): void {
    this.#closing = null;
    if (this.#walFd !== null) closeSync(this.#walFd);
    this.#walFd = null;
    this.#db.close();
    this.#answer(n, null);
  }

  #answer(n: number, failed: Failure | null, purge?: PurgeResult): void {
    const reply: WriterReply =
      failed !== null
        ? { n, ok: false, code: failed.code, message: failed.message }
        : purge === undefined
          ? { n, ok: true }
          : { n, ok: true, purge };
    this.#io.post(reply);
  }

  #fail(err: unknown): void {
    this.#clientRefs.clear(); // ids of rolled-back inserts
    this.#failed = {
      code: err instanceof Database.SqliteError ? err.code : ((err as { code?: string }).code ?? null),
      message: err instanceof Error ? err.message : String(err),
    };
  }

  #setSynchronous(mode: Synchronous): void {
    if (this.#synchronous === mode) return;
    this.#db.pragma(`synchronous = ${mode}`);
    this.#synchronous = mode;
  }

  #push(m: PushWrite): void {
    const s = this.#s;
    if (m.newTenant !== null) s.insertTenant.run(m.tenantId, m.newTenant);
    const head = s.headOf.get(m.tenantId);
    // The store numbers rows from the head it believes committed; anything else is a bug, and must not be stored.
    if (head !== m.firstSeq - 1) {
      throw new Error(`writer: tenant ${m.tenantId} head is ${String(head)}, the batch starts at seq ${m.firstSeq}`);
    }
    const client = this.#clientRef(m.tenantId, m.clientId, m.now);
    const bytes = m.bytes === null ? null : Buffer.from(m.bytes);
    const r = m.rows;
    const count = r.length / 3;
    let text = 0;
    for (let i = 0; i < count; i++) {
      const seq = m.firstSeq + i;
      const clientSeq = r[i * 3] as number;
      const start = r[i * 3 + 1] as number;
      if (start >= 0 && bytes !== null) {
        s.insertRawAction.run(m.tenantId, seq, client, clientSeq, bytes.subarray(start, r[i * 3 + 2]), seq);
      } else {
        s.insertAction.run(m.tenantId, seq, client, clientSeq, m.texts[text++] as string);
      }
    }
    // The batch's runs: consecutive seqs (all of them) over consecutive client_seqs.
    let runStart = 0;
    for (let i = 1; i <= count; i++) {
      if (i < count && r[i * 3] === (r[(i - 1) * 3] as number) + 1) continue;
      s.insertRun.run(m.tenantId, client, r[runStart * 3] as number, r[(i - 1) * 3] as number, m.firstSeq + runStart);
      runStart = i;
    }
    const rej = m.rejections;
    for (let i = 0; i < rej.length; i += 3) {
      s.insertRejection.run(m.tenantId, client, rej[i] as number, rej[i + 1] as string, rej[i + 2] as string, m.now);
    }
    s.updateClientHigh.run(m.high, m.now, client);
    if (count > 0) s.setHead.run(m.firstSeq + count - 1, m.tenantId);
  }

  #clientRef(tenantId: number, clientId: string, now: number): number {
    const key = `${tenantId}:${clientId}`;
    let ref = this.#clientRefs.get(key);
    if (ref === undefined) {
      ref = this.#s.clientByKey.get(tenantId, clientId);
      ref ??= Number(this.#s.insertClient.run(tenantId, clientId, now).lastInsertRowid);
      this.#clientRefs.set(key, ref);
    }
    return ref;
  }

  #checkpoint(m: CheckpointWrite): void {
    writeRecords(this.#s, m);
  }

  /**
   * Log entries, tombstones and old rejections below each tenant's horizon.
   * The store checkpointed first; nothing above a tenant's watermark goes, since
   * recovery needs it. Chunked, so pushes get the lock between chunks.
   */
  #purge(m: PurgeWrite): PurgeResult {
    const s = this.#s;
    let tenants = 0;
    let actions = 0;
    let tombstones = 0;
    const seenSince = m.now - m.windowMs;
    for (const t of s.allTenants.all()) {
      const lowest = s.horizon.get(t.id, seenSince) ?? null;
      if (lowest === null) continue; // nobody pulled within the window: keep everything
      const horizon = Math.min(lowest, t.head_seq, t.records_through);
      if (horizon <= t.purged_through) continue;
      tenants++;
      let through = t.purged_through;
      while (through < horizon) {
        const upTo = Math.min(through + m.chunk, horizon);
        const from = through;
        this.#db
          .transaction(() => {
            actions += s.deleteActions.run(t.id, from, upTo).changes;
            s.setPurgedThrough.run(upTo, t.id);
          })
          .immediate();
        through = upTo;
      }
      s.deleteRuns.run(t.id, horizon);
      tombstones += s.deleteTombstones.run(t.id, horizon).changes;
    }
    const rejections = s.deleteRejections.run(seenSince).changes;
    return { tenants, actions, tombstones, rejections };
  }
}

interface TenantRow {
  id: number;
  head_seq: number;
  purged_through: number;
  records_through: number;
}

function prepareStatements(db: Database.Database) {
  const p = <P extends unknown[], R = unknown>(sql: string) => db.prepare<P, R>(sql);
  return {
    insertTenant: p<[number, string]>('INSERT INTO tenants (id, name) VALUES (?, ?)'),
    headOf: p<[number], number>('SELECT head_seq FROM tenants WHERE id = ?').pluck(),
    setHead: p<[number, number]>('UPDATE tenants SET head_seq = ? WHERE id = ?'),
    clientByKey: p<[number, string], number>('SELECT id FROM clients WHERE tenant = ? AND client_id = ?').pluck(),
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
    // The action's text as received (UTF-8 bytes, without its closing brace), completed with its seq.
    insertRawAction: p<[number, number, number, number, Buffer, number]>(
      `INSERT INTO actions (tenant, seq, client, client_seq, json) VALUES (?, ?, ?, ?, CAST(? AS TEXT) || ',"seq":' || ? || '}')`,
    ),
    insertRun: p<[number, number, number, number, number]>(
      'INSERT INTO client_runs (tenant, client, first_client_seq, last_client_seq, first_seq) VALUES (?, ?, ?, ?, ?)',
    ),
    insertRejection: p<[number, number, number, string, string, number]>(
      'INSERT INTO rejections (tenant, client, client_seq, id, reason, at) VALUES (?, ?, ?, ?, ?, ?)',
    ),
    ...recordStatements(db),
    allTenants: p<[], TenantRow>('SELECT id, head_seq, purged_through, records_through FROM tenants'),
    horizon: p<[number, number], number | null>(
      'SELECT MIN(cursor) FROM clients WHERE tenant = ? AND cursor IS NOT NULL AND last_seen >= ?',
    ).pluck(),
    deleteActions: p<[number, number, number]>('DELETE FROM actions WHERE tenant = ? AND seq > ? AND seq <= ?'),
    setPurgedThrough: p<[number, number]>('UPDATE tenants SET purged_through = ? WHERE id = ?'),
    // Runs whose every action is purged (a retry of one of them is a duplicate without seq either way).
    deleteRuns: p<[number, number]>(
      'DELETE FROM client_runs WHERE tenant = ? AND first_seq + (last_client_seq - first_client_seq) <= ?',
    ),
    deleteTombstones: p<[number, number]>('DELETE FROM entities WHERE tenant = ? AND deleted = 1 AND seq <= ?'),
    deleteRejections: p<[number]>('DELETE FROM rejections WHERE at < ?'),
  };
}
