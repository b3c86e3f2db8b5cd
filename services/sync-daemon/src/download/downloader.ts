/**
 * Brings down what other devices did: pulls pages from the persisted cursor
 * (the server's per-tenant seq, never a client clock), applies each page
 * atomically through the reconciler, and pulls again at once when the feed
 * announces a new head. Transient failures back off and retry.
 */
import type { Subscription } from 'rxjs';
import { Subject, auditTime, exhaustMap, from, merge, timer } from 'rxjs';
import type { NatsConnection, Subscription as NatsSubscription } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { apiSubjects, decodeWith, feedMessageSchema, pullResponseSchema, type SyncEvent } from '@ferry/contracts';
import type { Reconciled, Reconciler } from '../reconcile/reconciler.js';
import { Pause, backoffDelay } from '../upload/backoff.js';

export interface DownloaderOptions {
  readonly nc: NatsConnection;
  readonly tenant: string;
  readonly clientId: string;
  readonly reconciler: Reconciler;
  readonly logger: Logger;
  readonly emit: (event: SyncEvent) => void;
  readonly now: () => number;
  readonly onApplied: (result: Reconciled, cursor: number) => void;
  readonly onOnline: (online: boolean, reason: string) => void;
  /** The newest head this daemon has heard of (feed, push replies), for lag. */
  readonly onHead: (headSeq: number) => void;
  readonly pageLimit?: number;
  readonly retry: { readonly initialMs: number; readonly maxMs: number };
  readonly requestTimeoutMs?: number;
}

export class Downloader {
  readonly #o: DownloaderOptions;
  readonly #wake = new Subject<void>();
  #subscription: Subscription | null = null;
  #feed: NatsSubscription | null = null;
  #stopped = false;
  readonly #pause = new Pause();

  constructor(options: DownloaderOptions) {
    this.#o = options;
  }

  start(): void {
    const { nc, tenant } = this.#o;
    this.#feed = nc.subscribe(apiSubjects.feed(tenant), {
      callback: (err, msg) => {
        if (err !== null) return;
        const feed = decodeWith(feedMessageSchema, msg.data, 'feed');
        if (!feed.ok) {
          this.#o.logger.warn({ reason: feed.message }, 'malformed feed message ignored');
          return;
        }
        this.#o.onHead(feed.value.headSeq);
        if (feed.value.headSeq > this.#o.reconciler.cursor) this.poke();
      },
    });
    // The feed is best-effort (missed while disconnected); a slow heartbeat pull covers gaps.
    this.#subscription = merge(this.#wake, timer(0, 5000))
      .pipe(
        auditTime(1),
        exhaustMap(() => from(this.#drain())),
      )
      .subscribe({ error: (err: unknown) => this.#o.logger.error({ err }, 'downloader pipeline failed') });
  }

  poke(): void {
    this.#wake.next();
    this.#pause.wake();
  }

  stop(): void {
    this.#stopped = true;
    this.#pause.wake();
    this.#feed?.unsubscribe();
    this.#subscription?.unsubscribe();
  }

  async #drain(): Promise<void> {
    let attempt = 0;
    while (!this.#stopped) {
      let more: 'more' | 'done' | 'retry';
      try {
        more = await this.#pullOnce();
      } catch (err) {
        // A storage fault must not end the pipeline: report, back off, retry (the page was rolled back).
        const message = err instanceof Error ? err.message : String(err);
        this.#o.logger.error({ err }, 'download step failed');
        this.#o.emit({ type: 'error', at: this.#o.now(), code: 'internal', message });
        more = 'retry';
      }
      if (more === 'done') return;
      if (more === 'more') {
        attempt = 0;
        continue;
      }
      await this.#pause.sleep(backoffDelay(attempt++, this.#o.retry));
    }
  }

  /** One page: 'more' to go on, 'done' when caught up, 'retry' after a transient failure. */
  async #pullOnce(): Promise<'more' | 'done' | 'retry'> {
    const { nc, tenant, reconciler, emit, now } = this.#o;
    const since = reconciler.cursor;
    const request = { since, limit: this.#o.pageLimit ?? 1000, clientId: this.#o.clientId };
    let data: Uint8Array;
    try {
      const msg = await nc.request(apiSubjects.pull(tenant), new TextEncoder().encode(JSON.stringify(request)), {
        timeout: this.#o.requestTimeoutMs ?? 10_000,
      });
      data = msg.data;
    } catch (err) {
      this.#o.onOnline(false, err instanceof Error ? err.message : String(err));
      return 'retry';
    }
    const decoded = decodeWith(pullResponseSchema, data, 'pull reply');
    if (!decoded.ok) {
      emit({ type: 'error', at: now(), code: 'internal', message: decoded.message });
      return 'retry';
    }
    if ('error' in decoded.value) {
      const { code, message } = decoded.value.error;
      emit({ type: 'error', at: now(), code, message });
      if (code === 'unavailable' || code === 'internal') this.#o.onOnline(false, message);
      return 'retry';
    }
    this.#o.onOnline(true, 'pull answered');
    const page = decoded.value;
    if (page.resetRequired === true) {
      // Snapshot bootstrap is not built yet: say so loudly instead of guessing.
      emit({
        type: 'error',
        at: now(),
        code: 'unavailable',
        message: `cursor ${since} is behind the server's retention horizon: a snapshot bootstrap is required`,
      });
      return 'retry';
    }
    emit({ type: 'pull-received', at: now(), count: page.actions.length, since, next: page.next, more: page.more });
    if (page.actions.length > 0 || page.next > since) {
      const result = reconciler.applyPulled(page.actions, page.next);
      emit({
        type: 'applied',
        at: now(),
        count: page.actions.length,
        entities: result.changed.length,
        cursor: reconciler.cursor,
      });
      this.#o.onApplied(result, reconciler.cursor);
    }
    return page.more ? 'more' : 'done';
  }
}
