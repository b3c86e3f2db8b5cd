/**
 * The SQLite capture source (`source: {kind: "sqlite"}`): opens the app's file
 * beside the app (its journal mode untouched, with a busy timeout), attaches
 * (or brings the attachment up to date), tails the outbox promptly (PRAGMA
 * data_version polling plus a watch on the file), re-installs triggers when the
 * schema changes, and writes reconciled remote changes back. It takes the
 * app's write lock only for short transactions and never waits on it in the
 * tail, so the app keeps its speed.
 */
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { Logger } from 'pino';
import { ErrorCode, type Action, type ConflictRecord, type SyncEvent } from '@ferry/contracts';
import type { Reconciled, Reconciler, ReconcilerOptions } from '../reconcile/reconciler.js';
import type { WalStore } from '../wal/wal-store.js';
import { AttachLedger } from './attach-ledger.js';
import { AttachedReconciler } from './attached-reconciler.js';
import {
  assertOwner,
  immediate,
  installCapture,
  readAttachment,
  type AttachReport,
  type Attachment,
} from './sqlite-attach.js';
import { OutboxCapture } from './sqlite-outbox-capture.js';
import { SqliteWriteBack } from './sqlite-write-back.js';

export interface SqliteSourceOptions {
  /** The app's SQLite file. */
  readonly path: string;
  /** Tables to sync; absent: those chosen by `ferry attach`, else every table with a primary key. */
  readonly tables?: readonly string[] | undefined;
  readonly wal: WalStore;
  readonly logger: Logger;
  readonly emit: (event: SyncEvent) => void;
  readonly now: () => number;
  readonly newId: () => string;
  readonly onAppended?: (actions: readonly Action[]) => void;
  readonly knownCollections?: ReadonlySet<string> | null;
  /** Fallback poll of PRAGMA data_version when no file event comes (ms). */
  readonly pollMs?: number;
  /** At most one capture transaction per this many ms while the app writes (ms). */
  readonly coalesceMs?: number;
  /** How long attach and schema re-installs wait for the app's write lock (ms). */
  readonly busyTimeoutMs?: number;
  /** How long one write-back waits for the app's write lock before retrying later (ms). */
  readonly writeBackBusyMs?: number;
}

interface VersionStatements {
  readonly dataVersion: Database.Statement<[], number>;
  readonly schemaVersion: Database.Statement<[], number>;
}

export class SqliteSource {
  readonly #o: SqliteSourceOptions;
  readonly #ledger: AttachLedger;
  #reconciler: Reconciler | null = null;
  #app: Database.Database | null = null;
  #capture: OutboxCapture | null = null;
  #writeBack: SqliteWriteBack | null = null;
  #attachment: Attachment | null = null;
  #minted = new Set<string>();
  #schemaVersion = -1;
  #dataVersion = -1;
  #stmts: VersionStatements | null = null;
  #timer: NodeJS.Timeout | null = null;
  #dueAt = 0;
  #lastCaptureAt = 0;
  #installRetryAt = 0;
  readonly #coalesceMs: number;
  #watcher: FSWatcher | null = null;
  #stopped = true;
  #detached = false;
  #backlog = false;
  #writeBackAt = 0;
  #writeBackAttempt = 0;
  readonly #reportedProblems = new Set<string>();

  constructor(options: SqliteSourceOptions) {
    this.#o = options;
    this.#coalesceMs = options.coalesceMs ?? 3;
    this.#ledger = new AttachLedger(options.wal);
  }

  /** The reconciler the engine must use, so pulled pages check id collisions and queue write-backs. */
  createReconciler(options: ReconcilerOptions): Reconciler {
    const reconciler = new AttachedReconciler(options, {
      ledger: this.#ledger,
      mintedKeys: (collection) => this.#minted.has(collection),
      onCollisions: (conflicts) => this.#reportCollisions(conflicts),
    });
    this.#reconciler = reconciler;
    return reconciler;
  }

  /** The current attachment (after start). */
  get attachment(): Attachment | null {
    return this.#attachment;
  }

  /** Opens the app's file, attaches, and starts tailing (synchronous work; a Promise for the engine). */
  start(): Promise<void> {
    const { path, logger } = this.#o;
    if (this.#reconciler === null) throw new Error('SqliteSource: createReconciler() must be called before start()');
    const reconciler = this.#reconciler;
    const app = new Database(path, { fileMustExist: true });
    this.#app = app;
    app.pragma(`busy_timeout = ${this.#o.busyTimeoutMs ?? 5000}`);
    // Write-back applies remote rows in any order, and cascades arrive as their own changes.
    app.pragma('foreign_keys = OFF');
    const journal = String(app.pragma('journal_mode', { simple: true }));
    if (journal.toLowerCase() !== 'wal') {
      logger.warn(
        { path, journal },
        'the app database is not in WAL mode: Ferry works, but readers and writers block each other (PRAGMA journal_mode = WAL is recommended)',
      );
    }
    this.#stmts = {
      dataVersion: app.prepare<[], number>('PRAGMA data_version').pluck(),
      schemaVersion: app.prepare<[], number>('PRAGMA schema_version').pluck(),
    };
    const capture = new OutboxCapture({
      app,
      wal: this.#o.wal,
      ledger: this.#ledger,
      logger,
      emit: this.#o.emit,
      now: this.#o.now,
      knownCollections: this.#o.knownCollections ?? null,
      ...(this.#o.onAppended === undefined ? {} : { onAppended: this.#o.onAppended }),
    });
    this.#capture = capture;
    this.#writeBack = new SqliteWriteBack({
      app,
      capture,
      ledger: this.#ledger,
      view: (c, id) => reconciler.get(c, id),
      logger,
      emit: this.#o.emit,
      now: this.#o.now,
      busyTimeoutMs: this.#o.writeBackBusyMs ?? 200,
    });
    this.#install();
    this.#stopped = false;
    this.#watch();
    this.#schedule(0);
    return Promise.resolve();
  }

  stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#watcher?.close();
    this.#watcher = null;
    const app = this.#app;
    // Nothing to flush: uncaptured changes wait durably in the outbox for the next start. One
    // last clean-up records how far capture got, which `ferry detach` checks (skipped if busy).
    try {
      if (!this.#detached) this.#capture?.cleanup(true);
    } catch (err) {
      this.#o.logger.warn({ err }, 'outbox clean-up at stop failed');
    }
    app?.close();
    this.#app = null;
    return Promise.resolve();
  }

  /** Reconciled changes (pulled, rejected, bootstrapped): queue them and write them back now. */
  writeBack(result: Reconciled): void {
    if (result.changed.length > 0) this.#ledger.enqueue(result.changed.map((e) => [e.collection, e.id] as const));
    if (this.#stopped) return;
    this.#writeBackAt = 0;
    this.#runWriteBack();
  }

  /** Installs capture, or brings it up to date; drains rows of the old layout first, in the same transaction. */
  #install(): void {
    const app = this.#app as Database.Database;
    const capture = this.#capture as OutboxCapture;
    const { logger, emit, now } = this.#o;
    app.pragma(`busy_timeout = ${this.#o.busyTimeoutMs ?? 5000}`);
    const current = readAttachment(app);
    if (current !== null) {
      assertOwner(app, this.#o.wal.clientId);
      // Catch up outside the lock first, so the drain inside it (old layout) is short.
      capture.use(current);
      while (capture.backlog() > capture.batchSize && capture.captureBatch() > 0);
    }
    const report: AttachReport = immediate(app, () => {
      assertOwner(app, this.#o.wal.clientId);
      const before = readAttachment(app);
      if (before !== null) {
        capture.use(before);
        capture.drain();
      }
      return installCapture(app, {
        ...(this.#o.tables === undefined ? {} : { tables: this.#o.tables }),
        newId: this.#o.newId,
        owner: this.#o.wal.clientId,
      });
    });
    this.#attachment = report;
    this.#minted = new Set(report.layout.filter((t) => t.mintedKeys).map((t) => t.table));
    capture.use(report);
    this.#writeBack?.use(report);
    this.#schemaVersion = (this.#stmts as VersionStatements).schemaVersion.get() as number;
    for (const p of report.unsupported) this.#problem(`${p.table}`, `table ${p.table} is not synced: ${p.reason}`);
    for (const t of report.missing) this.#problem(`missing:${t}`, `table ${t} is not synced: no such table (yet)`);
    for (const t of report.removed) {
      const message = `table ${t} is no longer synced (dropped or deselected); its entities stay in the daemon`;
      logger.warn(message);
      emit({ type: 'error', at: now(), code: ErrorCode.Invalid, message });
    }
    if (report.installed.length > 0) {
      logger.info(
        {
          path: this.#o.path,
          attachId: report.attachId,
          installed: report.installed,
          backfilled: report.backfilled,
          notes: report.layout.filter((t) => t.notes.length > 0).map((t) => ({ table: t.table, notes: t.notes })),
        },
        'capture installed',
      );
      // What the daemon already knows of these tables (other devices' rows, values of new columns) goes in.
      const reconciler = this.#reconciler as Reconciler;
      for (const t of report.installed) {
        this.#ledger.enqueue(reconciler.query(t.table).map((e) => [e.collection, e.id] as const));
      }
    }
    logger.info(
      { path: this.#o.path, tables: report.layout.map((t) => t.table), unsupported: report.unsupported.length },
      'attached',
    );
  }

  #problem(key: string, message: string): void {
    if (this.#reportedProblems.has(key)) return;
    this.#reportedProblems.add(key);
    this.#o.logger.warn(message);
    this.#o.emit({ type: 'error', at: this.#o.now(), code: ErrorCode.Invalid, message });
  }

  #reportCollisions(conflicts: readonly ConflictRecord[]): void {
    const at = this.#o.now();
    for (const conflict of conflicts) {
      this.#o.logger.warn({ conflict }, 'id collision');
      this.#o.emit({ type: 'conflict', at, conflict });
    }
  }

  /** Wakes the tail when the app's file (or its -wal) changes; polling covers missed events. */
  #watch(): void {
    const name = basename(this.#o.path);
    try {
      this.#watcher = watch(dirname(this.#o.path), (_event, file) => {
        if (file !== `${name}-wal` && file !== name && file !== null) return;
        // A burst of app commits becomes one capture transaction every few ms, not one per commit:
        // fewer fsyncs of the daemon's file competing with the app's own I/O.
        this.#schedule(Math.max(0, this.#lastCaptureAt + this.#coalesceMs - this.#o.now()));
      });
      this.#watcher.on('error', () => {
        this.#watcher?.close();
        this.#watcher = null;
      });
    } catch {
      this.#watcher = null;
    }
  }

  /** Runs the next tick in `delayMs`, unless one is already due sooner. */
  #schedule(delayMs: number): void {
    if (this.#stopped) return;
    const due = this.#o.now() + delayMs;
    if (this.#timer !== null) {
      if (this.#dueAt <= due) return;
      clearTimeout(this.#timer);
    }
    this.#dueAt = due;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#tick();
    }, delayMs);
  }

  #tick(): void {
    if (this.#stopped || this.#detached) return;
    const stmts = this.#stmts as VersionStatements;
    const capture = this.#capture as OutboxCapture;
    let again = false;
    try {
      const schemaVersion = stmts.schemaVersion.get() as number;
      if (schemaVersion !== this.#schemaVersion && this.#o.now() >= this.#installRetryAt) {
        // A failed re-install (the app held its lock, say) is retried once a second, not every tick.
        this.#installRetryAt = this.#o.now() + 1000;
        this.#onSchemaChange();
        this.#installRetryAt = 0;
      }
      if (this.#detached) return;
      const dataVersion = stmts.dataVersion.get() as number;
      if (dataVersion !== this.#dataVersion || this.#backlog) {
        this.#dataVersion = dataVersion;
        const rows = capture.captureBatch();
        if (rows > 0) this.#lastCaptureAt = this.#o.now();
        this.#backlog = rows >= capture.batchSize;
        again = this.#backlog;
      }
      capture.cleanup();
      if (this.#writeBackAt !== Number.POSITIVE_INFINITY && this.#o.now() >= this.#writeBackAt) {
        again = this.#runWriteBack() || again;
      }
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.#o.logger.error({ err }, 'sqlite source step failed; retrying');
      this.#o.emit({ type: 'error', at: this.#o.now(), code: ErrorCode.Internal, message });
    }
    this.#schedule(again ? 0 : (this.#o.pollMs ?? 25));
  }

  /** One write-back chunk; true when more is queued right away. */
  #runWriteBack(): boolean {
    const writeBack = this.#writeBack;
    if (writeBack === null || this.#detached) return false;
    if (this.#reconciler?.bootstrapPhase === 'loading') {
      // A snapshot is replacing confirmed state page by page: written now, the app's rows would
      // vanish and come back. The queue is durable; write once the snapshot is in.
      this.#writeBackAt = this.#o.now() + 100;
      this.#schedule(100);
      return false;
    }
    let outcome;
    try {
      outcome = writeBack.runOnce();
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.#o.logger.error({ err }, 'write-back failed; it will be retried');
      this.#o.emit({ type: 'error', at: this.#o.now(), code: ErrorCode.Internal, message: `write-back: ${message}` });
      outcome = 'busy' as const;
    }
    if (outcome === 'busy') {
      // The app holds its write lock (or a step failed): the queue is durable, try again soon.
      const delay = Math.min(1000, 10 * 2 ** Math.min(this.#writeBackAttempt++, 7));
      this.#writeBackAt = this.#o.now() + delay;
      this.#schedule(delay);
      return false;
    }
    this.#writeBackAttempt = 0;
    this.#writeBackAt = outcome === 'more' ? 0 : Number.POSITIVE_INFINITY;
    if (outcome === 'more') this.#schedule(0);
    return outcome === 'more';
  }

  #onSchemaChange(): void {
    const app = this.#app as Database.Database;
    if (readAttachment(app) === null) {
      this.#detached = true;
      const message = `${this.#o.path} was detached (ferry detach): capture and write-back stopped; restart the daemon to attach again`;
      this.#o.logger.error(message);
      this.#o.emit({ type: 'error', at: this.#o.now(), code: ErrorCode.Invalid, message });
      return;
    }
    this.#install();
    this.#writeBackAt = 0;
  }
}
