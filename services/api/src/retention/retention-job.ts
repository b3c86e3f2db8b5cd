/**
 * The periodic retention purge (DESIGN §6): log entries, tombstones and old
 * rejections below each tenant's horizon. One purge at a time; a failure is
 * logged and retried at the next tick, never thrown.
 */
import type { Logger } from 'pino';
import type { ApiStore } from '../store/store.js';

export interface RetentionJobOptions {
  readonly store: ApiStore;
  readonly windowMs: number;
  readonly intervalMs: number;
  readonly now: () => number;
  readonly logger: Logger;
}

export class RetentionJob {
  readonly #options: RetentionJobOptions;
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<void> | null = null;
  #stopped = false;

  constructor(options: RetentionJobOptions) {
    this.#options = options;
  }

  run(): void {
    this.#stopped = false;
    this.#schedule();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    await this.#running;
  }

  /** Runs one purge now (also what each tick does). */
  async purgeOnce(): Promise<void> {
    const { store, windowMs, now, logger } = this.#options;
    try {
      const report = await store.purge({ now: now(), windowMs });
      if (report.actions + report.tombstones + report.rejections > 0) logger.info(report, 'retention purge');
      else logger.debug(report, 'retention purge found nothing');
    } catch (err) {
      logger.warn({ err }, 'retention purge failed; retrying at the next tick');
    }
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#running = this.purgeOnce().finally(() => {
        this.#running = null;
        this.#schedule();
      });
    }, this.#options.intervalMs);
    // The purge timer alone must not keep the process alive.
    this.#timer.unref();
  }
}
