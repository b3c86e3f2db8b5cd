/**
 * Brings down what other devices did: pulls pages from the persisted cursor
 * (the server's per-tenant seq, never a client clock), applies each page
 * atomically through the reconciler, and pulls again at once when the feed
 * announces a new head. A new device, or one the server's retention has left
 * behind (`resetRequired`), first loads a snapshot page by page, resumable
 * after a crash, then pulls from the snapshot's seq. Transient failures back
 * off and retry.
 */
import type { Subscription } from 'rxjs';
import { Subject, merge, timer } from 'rxjs';
import type { NatsConnection, Subscription as NatsSubscription } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import {
  apiSubjects,
  decodeWith,
  feedMessageSchema,
  pullResponseSchema,
  surelyValidPullReply,
  snapshotResponseSchema,
  type ErrorCode,
  type ErrorReply,
  type Schema,
  type SyncEvent,
} from '@ferry/contracts';
import type { Reconciled, Reconciler } from '../reconcile/reconciler.js';
import { DrainLoop, Pause, backoffDelay } from '../upload/backoff.js';

/** The longest a feed waits for the reply of our push in flight (a push round trip is a few ms). */
const DEFER_MAX_MS = 25;

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
  /**
   * True while a push of ours is out: the feed of its commit comes just before
   * its reply, whose acks may move the cursor over it (Reconciler.acknowledge),
   * so the pull waits for `resume` rather than fetch our own actions back.
   */
  readonly deferFeed?: () => boolean;
  readonly pageLimit?: number;
  readonly snapshotPageLimit?: number;
  readonly retry: { readonly initialMs: number; readonly maxMs: number };
  readonly requestTimeoutMs?: number;
}

export class Downloader {
  readonly #o: DownloaderOptions;
  readonly #wake = new Subject<void>();
  #subscription: Subscription | null = null;
  #feed: NatsSubscription | null = null;
  #stopped = false;
  /** Set by a wake-up; a drain that began before it pulls once more (exhaustMap drops the wake itself). */
  #news = false;
  /** Highest head announced by the feed while a pull waited for our push (deferFeed). */
  #deferredHead = 0;
  /** Whether this process has announced the bootstrap in progress (one event per bootstrap). */
  #announced = false;
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
        const head = feed.value.headSeq;
        this.#o.onHead(head);
        if (head <= this.#o.reconciler.cursor) return;
        if (this.#o.deferFeed?.() !== true) this.poke();
        else if (this.#deferredHead === 0) {
          this.#deferredHead = head;
          // Bounded: news from another device must not wait on a slow push of ours (or its timeout).
          setTimeout(() => this.resume(), DEFER_MAX_MS).unref();
        } else this.#deferredHead = Math.max(this.#deferredHead, head);
      },
    });
    // The feed is best-effort (missed while disconnected); a slow heartbeat pull covers gaps.
    // A wake-up pulls at once; one during a pull makes it pull again (#news, DrainLoop).
    const loop = new DrainLoop(
      () => this.#drain(),
      (err) => this.#o.logger.error({ err }, 'downloader pipeline failed'),
    );
    this.#subscription = merge(this.#wake, timer(0, 5000)).subscribe(() => loop.request());
  }

  /** The push the feed waited for is over: pull if its acks did not cover what the feed announced. */
  resume(): void {
    const head = this.#deferredHead;
    this.#deferredHead = 0;
    if (head > this.#o.reconciler.cursor && !this.#stopped) this.poke();
  }

  poke(): void {
    this.#news = true;
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
      this.#news = false;
      let more: 'more' | 'done' | 'retry';
      try {
        more = this.#o.reconciler.needsSnapshot ? await this.#snapshotOnce() : await this.#pullOnce();
      } catch (err) {
        // A storage fault must not end the pipeline: report, back off, retry (the page was rolled back).
        const message = err instanceof Error ? err.message : String(err);
        this.#o.logger.error({ err }, 'download step failed');
        this.#o.emit({ type: 'error', at: this.#o.now(), code: 'internal', message });
        more = 'retry';
      }
      if (more === 'done' && !this.#news) return;
      if (more !== 'retry') {
        attempt = 0;
        continue;
      }
      await this.#pause.sleep(backoffDelay(attempt++, this.#o.retry));
    }
  }

  /**
   * One request/reply with the API, its reply checked against `schema`. A
   * failure (no answer, a malformed reply, an error reply) is reported here;
   * the caller gets the error code, if the API sent one, to act on.
   */
  async #ask<T extends object>(
    subject: string,
    body: unknown,
    schema: Schema<T | ErrorReply>,
    what: string,
    surely?: (raw: unknown) => boolean,
  ): Promise<{ ok: true; value: T } | { ok: false; code: ErrorCode | null }> {
    const { emit, now } = this.#o;
    let data: Uint8Array;
    try {
      const msg = await this.#o.nc.request(subject, new TextEncoder().encode(JSON.stringify(body)), {
        timeout: this.#o.requestTimeoutMs ?? 10_000,
      });
      data = msg.data;
    } catch (err) {
      this.#o.onOnline(false, `${what}: ${err instanceof Error ? err.message : String(err)}`);
      return { ok: false, code: null };
    }
    const decoded = decodeWith(schema, data, `${what} reply`, surely);
    if (!decoded.ok) {
      emit({ type: 'error', at: now(), code: 'internal', message: decoded.message });
      return { ok: false, code: null };
    }
    const value = decoded.value;
    if ('error' in value) {
      const { code, message } = value.error;
      emit({ type: 'error', at: now(), code, message });
      if (code === 'unavailable' || code === 'internal') this.#o.onOnline(false, message);
      return { ok: false, code };
    }
    this.#o.onOnline(true, `${what} answered`);
    return { ok: true, value };
  }

  /** One snapshot page of a bootstrap; 'more' until it is in, then pulling takes over. */
  async #snapshotOnce(): Promise<'more' | 'retry'> {
    const { tenant, reconciler, emit, now } = this.#o;
    if (reconciler.bootstrapPhase !== 'loading') {
      reconciler.beginBootstrap();
      this.#announce('new-device');
    } else if (!this.#announced) this.#announce('resumed');
    const after = reconciler.snapshotResumeToken;
    const request = { limit: this.#o.snapshotPageLimit ?? 1000, ...(after === null ? {} : { after }) };
    const reply = await this.#ask(apiSubjects.snapshot(tenant), request, snapshotResponseSchema, 'snapshot');
    if (!reply.ok) {
      // A token the server no longer honours (e.g. a restored server): start the snapshot over.
      if (reply.code === 'invalid' && after !== null) reconciler.beginBootstrap();
      return 'retry';
    }
    const page = reply.value;
    const result = reconciler.applySnapshotPage(page.entities, page.seq, page.after, page.more);
    emit({ type: 'snapshot-applied', at: now(), entities: page.entities.length, seq: page.seq, more: page.more });
    if (!page.more) this.#announced = false;
    this.#o.onHead(page.seq);
    this.#o.onApplied(result, reconciler.cursor);
    return 'more';
  }

  #announce(reason: 'new-device' | 'reset-required' | 'resumed'): void {
    this.#announced = true;
    this.#o.emit({ type: 'bootstrap-started', at: this.#o.now(), reason, cursor: this.#o.reconciler.cursor });
  }

  /** One page: 'more' to go on, 'done' when caught up, 'retry' after a transient failure. */
  async #pullOnce(): Promise<'more' | 'done' | 'retry'> {
    const { tenant, reconciler, emit, now } = this.#o;
    const since = reconciler.cursor;
    const request = { since, limit: this.#o.pageLimit ?? 1000, clientId: this.#o.clientId };
    const reply = await this.#ask(apiSubjects.pull(tenant), request, pullResponseSchema, 'pull', surelyValidPullReply);
    if (!reply.ok) return 'retry';
    const page = reply.value;
    if (page.resetRequired === true) {
      // The server no longer holds the log from our cursor: replace confirmed state with a snapshot.
      reconciler.beginBootstrap();
      this.#announce('reset-required');
      return 'more';
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
