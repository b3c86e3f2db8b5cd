/**
 * The sync daemon as one engine: capture → WAL → upload, download → reconcile
 * → publish. Embeddable (the bus and upstream connections are injected) and
 * run by `ferry daemon`. Every step is reported as a sync event and a log line.
 */
import { mkdirSync } from 'node:fs';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import {
  FerryError,
  busSubjects,
  type Action,
  type DaemonConfig,
  type EntityState,
  type StatusReply,
  type SyncEvent,
} from '@ferry/contracts';
import type { PolicyBook } from '@ferry/domain';
import { BusCapture } from '../capture/bus-capture.js';
import { daemonDbPath } from '../observe/conflict-log.js';
import { Downloader } from '../download/downloader.js';
import { BusPublisher } from '../publish/bus-publisher.js';
import { Reconciler, type Reconciled } from '../reconcile/reconciler.js';
import { SqliteSource } from '../source/sqlite-source.js';
import { Uploader } from '../upload/uploader.js';
import { WalStore } from '../wal/wal-store.js';

export interface SyncEngineOptions {
  readonly config: DaemonConfig;
  readonly policies: PolicyBook;
  readonly bus: NatsConnection;
  /** Optional at construction: a device starts offline and attaches the link when it comes up. */
  readonly upstream?: NatsConnection;
  readonly logger: Logger;
  readonly now?: () => number;
  readonly newId: () => string;
}

export class SyncEngine {
  readonly wal: WalStore;
  readonly reconciler: Reconciler;
  readonly #o: SyncEngineOptions;
  readonly #now: () => number;
  readonly #publisher: BusPublisher;
  readonly #capture: BusCapture | SqliteSource;
  /** The SQLite attach source (`source.kind: "sqlite"`), which also writes reconciled changes back. */
  readonly #source: SqliteSource | null = null;
  #uploader: Uploader | null = null;
  #downloader: Downloader | null = null;
  #started = false;
  #online = false;
  #lastSyncAt: number | null = null;
  #head = 0;
  readonly #listeners = new Set<(event: SyncEvent) => void>();
  readonly #stateListeners = new Set<(entities: readonly EntityState[]) => void>();
  #upstream: NatsConnection | null = null;
  /** Captured batches whose state echo to the app is still to be published (`#echo`). */
  #echoes: (readonly Action[])[] = [];

  constructor(options: SyncEngineOptions) {
    this.#o = options;
    const { config, logger } = options;
    for (const [name, c] of Object.entries(config.collections)) {
      if (c.policy === 'custom') {
        // Confirmed state lives in SQLite, whose record form cannot hold a custom merge's history yet.
        throw new FerryError('invalid', `collections.${name}.policy: "custom" is not supported by the daemon yet`);
      }
      if (c.policy === 'reject-stale' && config.source.kind === 'sqlite') {
        // A SQLite write carries no baseVersion, so the server would refuse every update as stale.
        throw new FerryError('invalid', `collections.${name}.policy: "reject-stale" needs the bus source`);
      }
    }
    const now = (this.#now = options.now ?? Date.now);
    mkdirSync(config.dataDir, { recursive: true });
    this.wal = WalStore.open(daemonDbPath(config.dataDir), {
      ...(config.clientId === undefined ? {} : { clientId: config.clientId }),
      newId: options.newId,
      now,
    });
    const emit = (event: SyncEvent) => this.#emit(event);
    const known = config.strictCollections ? new Set(Object.keys(config.collections)) : null;
    const onAppended = (actions: readonly Action[]) => {
      // The push goes first: its request leaves when this task ends (the NATS
      // client writes in a microtask), so the app's own echo waits a turn
      // instead of the upload waiting for it (bench:sync latency).
      this.#uploader?.poke();
      this.#echoes.push(actions);
      if (this.#echoes.length === 1) setImmediate(() => this.#echo());
    };
    if (config.source.kind === 'sqlite') {
      this.#source = new SqliteSource({
        path: config.source.path,
        tables: config.source.tables,
        wal: this.wal,
        logger: logger.child({ component: 'sqlite-source' }),
        emit,
        now,
        newId: options.newId,
        // The app's file already holds its own writes: no state batch per capture, just upload.
        onAppended: () => this.#uploader?.poke(),
        knownCollections: known,
      });
    }
    const reconcilerOptions = { wal: this.wal, policies: options.policies, now };
    this.reconciler = this.#source?.createReconciler(reconcilerOptions) ?? new Reconciler(reconcilerOptions);
    const subjects = busSubjects(config.app, config.bus.prefix);
    this.#publisher = new BusPublisher({
      nc: options.bus,
      subjects,
      logger: logger.child({ component: 'publish' }),
      status: () => this.status(),
      query: (collection, id) => this.#query(collection, id),
    });
    this.#capture =
      this.#source ??
      new BusCapture({
        nc: options.bus,
        app: config.app,
        changesSubject: subjects.changes,
        wal: this.wal,
        logger: logger.child({ component: 'capture' }),
        emit,
        now,
        knownCollections: known,
        onAppended,
      });
    if (options.upstream !== undefined) this.attachUpstream(options.upstream);
  }

  /** Connects the sync half (upload, download) to the server link; once, when it is up. */
  attachUpstream(upstream: NatsConnection): void {
    if (this.#uploader !== null) return;
    this.#upstream = upstream;
    const { config, logger } = this.#o;
    const now = this.#now;
    const emit = (event: SyncEvent) => this.#emit(event);
    this.#uploader = new Uploader({
      nc: upstream,
      tenant: config.tenant,
      wal: this.wal,
      logger: logger.child({ component: 'upload' }),
      emit,
      now,
      batch: config.batch,
      retry: config.retry,
      onOnline: (online, reason) => this.#setOnline(online, reason),
      onSettled: (acks, rejections, headSeq) => {
        if (acks.length > 0) this.reconciler.acknowledge(acks);
        if (rejections.length > 0) this.#reconciled(this.reconciler.reject(rejections), 'rejected');
        if (headSeq > this.#head) this.#head = headSeq;
        this.#lastSyncAt = now();
        // Acks right after the cursor moved it (Reconciler.acknowledge); anything else
        // between it and the head is pulled (our own actions in it are deduped).
        if (this.#head > this.reconciler.cursor) this.#downloader?.poke();
      },
      onPushEnd: () => this.#downloader?.resume(),
    });
    this.#downloader = new Downloader({
      nc: upstream,
      tenant: config.tenant,
      clientId: this.wal.clientId,
      reconciler: this.reconciler,
      logger: logger.child({ component: 'download' }),
      emit,
      now,
      retry: config.retry,
      pageLimit: config.download.pageLimit,
      snapshotPageLimit: config.download.snapshotPageLimit,
      onOnline: (online, reason) => this.#setOnline(online, reason),
      onHead: (head) => {
        if (head > this.#head) this.#head = head;
      },
      deferFeed: () => this.#uploader?.pushing === true,
      onApplied: (result) => {
        this.#lastSyncAt = now();
        this.#reconciled(result, 'applied');
      },
    });
    if (this.#started) this.#startSync();
  }

  get clientId(): string {
    return this.wal.clientId;
  }

  /** Listens to every sync event (the embedding API; the bus gets them too). */
  onEvent(listener: (event: SyncEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Listens to every state batch the app is sent (the embedding API; the bus gets them too). */
  onState(listener: (entities: readonly EntityState[]) => void): () => void {
    this.#stateListeners.add(listener);
    return () => this.#stateListeners.delete(listener);
  }

  /** The app's own captured changes, as state; run a turn after capture, and by stop() before the WAL closes. */
  #echo(): void {
    const batches = this.#echoes;
    if (batches.length === 0) return;
    this.#echoes = [];
    try {
      this.#publishState(this.reconciler.viewsOf(batches.flat()));
    } catch (err) {
      // A storage fault here must not escape an immediate: report it like the other stages do.
      const message = err instanceof Error ? err.message : String(err);
      this.#o.logger.error({ err }, 'state echo failed');
      this.#emit({ type: 'error', at: this.#now(), code: 'internal', message });
    }
  }

  #publishState(entities: EntityState[]): void {
    this.#publisher.publishState(entities, this.reconciler.cursor);
    if (entities.length > 0) for (const l of this.#stateListeners) l(entities);
  }

  async start(): Promise<void> {
    this.#publisher.start();
    await this.#capture.start();
    this.#started = true;
    if (this.#uploader !== null) this.#startSync();
    this.#o.logger.info(
      { clientId: this.clientId, pending: this.wal.pendingCount(), cursor: this.reconciler.cursor },
      'sync engine started',
    );
  }

  #startSync(): void {
    this.#uploader?.start();
    this.#downloader?.start();
    void this.#watchUpstream();
    this.#setOnline(true, 'upstream connected');
  }

  async stop(): Promise<void> {
    this.#uploader?.stop();
    this.#downloader?.stop();
    await this.#capture.stop();
    this.#echo(); // the last batch the capture flushed, while the WAL is still open
    this.#publisher.stop();
    this.wal.close();
  }

  /** Follows the upstream link: offline at once on a disconnect, resume at once on reconnect. */
  async #watchUpstream(): Promise<void> {
    const upstream = this.#upstream;
    if (upstream === null) return;
    for await (const s of upstream.status()) {
      if (s.type === 'disconnect') this.#setOnline(false, 'upstream connection lost');
      else if (s.type === 'reconnect') {
        this.#uploader?.poke();
        this.#downloader?.poke();
      }
    }
  }

  status(): StatusReply {
    const cursor = this.reconciler.cursor;
    return {
      online: this.#online,
      pending: this.wal.pendingCount(),
      cursor,
      lastSyncAt: this.#lastSyncAt,
      lag: Math.max(0, this.#head - cursor),
      hlc: this.wal.clock.last,
    } as StatusReply;
  }

  #query(collection: string, id: string | undefined): EntityState[] {
    if (id !== undefined) {
      const one = this.reconciler.get(collection, id);
      return one === null ? [] : [one];
    }
    return this.reconciler.query(collection);
  }

  #reconciled(result: Reconciled, _why: string): void {
    this.#source?.writeBack(result);
    this.#publishState(result.changed);
    const at = this.#now();
    for (const conflict of result.conflicts) this.#emit({ type: 'conflict', at, conflict });
    for (const c of result.conflicts) {
      if (c.resolution === 'rejected') {
        this.#emit({
          type: 'rejected',
          at,
          actionId: c.loser.actionId,
          collection: c.collection,
          entityId: c.entityId,
          reason: c.reason ?? 'rejected',
        });
      }
    }
  }

  #setOnline(online: boolean, reason: string): void {
    if (online === this.#online) return;
    this.#online = online;
    this.#emit(online ? { type: 'online', at: this.#now() } : { type: 'offline', at: this.#now(), reason });
    if (online) this.#uploader?.poke();
  }

  #emit(event: SyncEvent): void {
    const level = event.type === 'error' || event.type === 'dead-lettered' ? 'warn' : 'debug';
    this.#o.logger[level]({ event }, event.type);
    this.#publisher.publishEvent(event);
    for (const l of this.#listeners) l(event);
  }
}
