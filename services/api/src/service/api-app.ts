/**
 * Wires one API process: the store, the NATS connection, the request service
 * and the retention job, with `run()`/`stop()` for the whole. It reads no
 * environment and installs no signal handlers; `cli.ts` does that.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCode, FerryError, type ApiConfig, type Limits } from '@ferry/contracts';
import { connect, type NatsConnection, type NodeConnectionOptions } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { resolveLimits, resolvePolicies } from '../config/limits.js';
import { createPullHandler } from '../pull/pull-handler.js';
import { createPushHandler } from '../push/push-handler.js';
import { RetentionJob } from '../retention/retention-job.js';
import { createSnapshotHandler } from '../snapshot/snapshot-handler.js';
import { SqliteStore } from '../store/sqlite-store.js';
import type { ApiStore } from '../store/store.js';
import { ApiService } from './api-service.js';

export const STORE_FILE = 'ferry-api.sqlite';
const DAY_MS = 86_400_000;
/** Room left in a reply for NATS headers and the reply envelope. */
const REPLY_HEADROOM = 4096;

export interface ApiAppOptions {
  readonly config: ApiConfig;
  readonly logger: Logger;
  /** Server time; injected so tests can move the clock. */
  readonly now?: () => number;
}

export class ApiApp {
  readonly #config: ApiConfig;
  readonly #logger: Logger;
  readonly #now: () => number;
  #store: ApiStore | null = null;
  #nc: NatsConnection | null = null;
  #service: ApiService | null = null;
  #retention: RetentionJob | null = null;
  #stopping = false;

  constructor(options: ApiAppOptions) {
    this.#config = options.config;
    this.#logger = options.logger;
    this.#now = options.now ?? Date.now;
  }

  /** Starts everything; resolves once requests are being answered. On failure, undoes what it started. */
  async run(): Promise<void> {
    try {
      await this.#start();
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  async #start(): Promise<void> {
    const config = this.#config;
    const policies = resolvePolicies(config.collections);
    if (!policies.ok) throw new FerryError(ErrorCode.Invalid, policies.message);
    const limits = resolveLimits(config.limits);

    mkdirSync(config.dataDir, { recursive: true });
    const path = join(config.dataDir, STORE_FILE);
    const store = SqliteStore.open({
      path,
      policies: policies.policies,
      // A client that keeps pulling must stay "seen" to the purge, however short the window.
      cursorRefreshMs: (config.retention.windowDays * DAY_MS) / 4,
      logger: this.#logger.child({ component: 'store' }),
    });
    this.#store = store;
    this.#logger.info({ path }, 'store open');

    try {
      this.#nc = await connect(this.#connectionOptions());
    } catch (err) {
      throw new FerryError(ErrorCode.Unavailable, `cannot connect to NATS at ${config.natsUrl}: ${describe(err)}`, {
        cause: err,
      });
    }
    const nc = this.#nc;
    void this.#watchStatus(nc);
    this.#logger.info({ server: nc.getServer(), maxPayload: nc.info?.max_payload }, 'nats connected');

    const service = new ApiService({
      nc,
      queue: config.queueGroup,
      logger: this.#logger.child({ component: 'service' }),
      handlers: this.#handlers(store, limits, nc),
    });
    this.#service = service;
    await service.run();

    this.#retention = new RetentionJob({
      store,
      windowMs: config.retention.windowDays * DAY_MS,
      intervalMs: config.retention.purgeIntervalMs,
      now: this.#now,
      logger: this.#logger.child({ component: 'retention' }),
    });
    this.#retention.run();
  }

  /**
   * Drains: no new requests, the ones in flight answered (each store call
   * commits or rolls back synchronously, so no transaction is left open),
   * NATS drained, then the store closed.
   */
  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    await this.#retention?.stop();
    await this.#service?.stop();
    const nc = this.#nc;
    if (nc !== null && !nc.isClosed()) {
      try {
        await nc.drain();
      } catch (err) {
        this.#logger.warn({ err }, 'nats drain failed');
      }
    }
    try {
      // Checkpoints the write-behind records; if that fails, the next open recovers them from the log.
      await this.#store?.close();
    } catch (err) {
      this.#logger.error({ err }, 'store close failed; records will be recovered from the log on the next start');
    }
    this.#logger.info('api stopped');
  }

  /** Runs one retention purge now (the job also runs it every `purgeIntervalMs`). */
  async purgeNow(): Promise<void> {
    await this.#retention?.purgeOnce();
  }

  /** Resolves when the NATS connection closes for good (after stop(), or if it gives up). */
  async closed(): Promise<void | Error> {
    return this.#nc === null ? undefined : this.#nc.closed();
  }

  #handlers(store: ApiStore, limits: Limits, nc: NatsConnection) {
    const maxReplyBytes = () => Math.min(limits.maxBatchBytes, (nc.info?.max_payload ?? 1024 * 1024) - REPLY_HEADROOM);
    const onStored = (tenant: Parameters<ApiService['publishFeed']>[0], headSeq: number) =>
      this.#service?.publishFeed(tenant, headSeq);
    return {
      push: createPushHandler({
        store,
        limits,
        now: this.#now,
        logger: this.#logger.child({ component: 'push' }),
        onStored,
        maxReplyBytes,
      }),
      pull: createPullHandler({
        store,
        limits,
        now: this.#now,
        logger: this.#logger.child({ component: 'pull' }),
        maxReplyBytes,
      }),
      snapshot: createSnapshotHandler({
        store,
        limits,
        logger: this.#logger.child({ component: 'snapshot' }),
        maxReplyBytes,
      }),
    };
  }

  #connectionOptions(): NodeConnectionOptions {
    const { natsUrl, nats } = this.#config;
    const options: NodeConnectionOptions = {
      servers: natsUrl,
      name: 'ferry-api',
      // An API outlives NATS restarts: reconnect forever.
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
    };
    if (nats.user !== undefined) options.user = nats.user;
    if (nats.pass !== undefined) options.pass = nats.pass;
    if (nats.token !== undefined) options.token = nats.token;
    return options;
  }

  async #watchStatus(nc: NatsConnection): Promise<void> {
    const logger = this.#logger.child({ component: 'nats' });
    for await (const status of nc.status()) {
      switch (status.type) {
        case 'disconnect':
        case 'reconnect':
          logger.warn({ server: status.server }, `nats ${status.type}`);
          break;
        case 'error':
          logger.error({ err: status.error }, 'nats error');
          break;
        case 'slowConsumer':
          logger.warn({ subject: status.sub.getSubject(), pending: status.pending }, 'nats slow consumer');
          break;
        default:
          logger.debug({ status: status.type }, 'nats status');
      }
    }
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
