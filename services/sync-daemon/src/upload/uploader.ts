/**
 * Ships pending WAL actions upstream in clientSeq order. Batches by count,
 * bytes and time; a transient failure (offline, timeout, no responders,
 * `unavailable`) is retried with backoff; a permanent batch error is narrowed
 * down to the single action at fault, which is rejected, so it never blocks
 * the queue behind it (DESIGN §4).
 */
import type { Subscription } from 'rxjs';
import { Subject, auditTime, merge, timer, type Observable } from 'rxjs';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import {
  apiSubjects,
  decodeWith,
  isTransientCode,
  pushResponseSchema,
  type Action,
  type ErrorCode,
  type PushReply,
  type SyncEvent,
} from '@ferry/contracts';
import type { Acknowledgement, Rejection } from '@ferry/domain';
import type { WalStore } from '../wal/wal-store.js';
import { DrainLoop, Pause, backoffDelay } from './backoff.js';

export interface UploaderOptions {
  readonly nc: NatsConnection;
  readonly tenant: string;
  readonly wal: WalStore;
  readonly logger: Logger;
  readonly emit: (event: SyncEvent) => void;
  readonly now: () => number;
  /** Called with the outcome of each acknowledged push, inside nothing: the caller reconciles. */
  readonly onSettled: (acks: Acknowledgement[], rejections: Rejection[], headSeq: number) => void;
  readonly onOnline: (online: boolean, reason: string) => void;
  /** After each push attempt, whatever its outcome (after onSettled when it was answered). */
  readonly onPushEnd?: () => void;
  readonly batch: { readonly maxActions: number; readonly maxBytes: number; readonly intervalMs: number };
  readonly retry: { readonly initialMs: number; readonly maxMs: number };
  readonly requestTimeoutMs?: number;
}

type PushOutcome =
  | { kind: 'reply'; reply: PushReply }
  | { kind: 'transient'; code: ErrorCode; message: string }
  | { kind: 'permanent'; code: ErrorCode; message: string };

export class Uploader {
  readonly #o: UploaderOptions;
  readonly #wake = new Subject<void>();
  #subscription: Subscription | null = null;
  #stopped = false;
  #pushing = false;
  readonly #pause = new Pause();

  constructor(options: UploaderOptions) {
    this.#o = options;
  }

  /** A push is out and not yet answered (or failed). */
  get pushing(): boolean {
    return this.#pushing;
  }

  /** Starts the pipeline: wake-ups (new captures, reconnects, a slow heartbeat) coalesce into drains. */
  start(): void {
    const heartbeat = timer(0, 1000);
    const { intervalMs } = this.#o.batch;
    const loop = new DrainLoop(
      () => this.#drain(),
      (err) => this.#o.logger.error({ err }, 'uploader pipeline failed'),
    );
    // With no interval a wake-up drains at once (even a 0 ms timer costs a millisecond or more
    // of latency); one during a drain makes it drain again (DrainLoop).
    this.#subscription = merge(this.#wake, heartbeat)
      .pipe(intervalMs > 0 ? auditTime(intervalMs) : (wakes: Observable<unknown>) => wakes)
      .subscribe(() => loop.request());
  }

  /** Something was appended to the WAL, or the link came back. */
  poke(): void {
    this.#wake.next();
    // A backoff sleep ends early on news: the server may be back.
    this.#pause.wake();
  }

  stop(): void {
    this.#stopped = true;
    this.#pause.wake();
    this.#subscription?.unsubscribe();
    this.#subscription = null;
  }

  /** Pushes until the WAL has nothing pending; transient failures wait and retry the same batch. */
  async #drain(): Promise<void> {
    let attempt = 0;
    while (!this.#stopped) {
      let done: boolean;
      try {
        const batch = this.#nextBatch();
        if (batch.length === 0) return;
        this.#pushing = true;
        try {
          done = await this.#pushNarrowing(batch);
        } finally {
          this.#pushing = false;
          this.#o.onPushEnd?.();
        }
      } catch (err) {
        // A storage fault (a damaged row, a full disk) must not end the pipeline: report, back off, retry.
        const message = err instanceof Error ? err.message : String(err);
        this.#o.logger.error({ err }, 'upload step failed');
        this.#o.emit({ type: 'error', at: this.#o.now(), code: 'internal', message });
        done = false;
      }
      if (done) {
        attempt = 0;
        continue;
      }
      await this.#pause.sleep(backoffDelay(attempt++, this.#o.retry));
    }
  }

  /** The oldest pending actions, cut at the count and byte budget (never reordered). */
  #nextBatch(): Action[] {
    const { maxActions, maxBytes } = this.#o.batch;
    const page = this.#o.wal.readPendingSized(0, maxActions);
    const out: Action[] = [];
    let bytes = 64; // the request envelope
    for (const { action: a, bytes: stored } of page) {
      const size = stored + 1;
      if (out.length > 0 && bytes + size > maxBytes) break;
      out.push(a);
      bytes += size;
    }
    return out;
  }

  /**
   * Pushes a batch; on a permanent whole-batch error, splits it until the
   * action at fault stands alone and rejects it. False when a transient
   * failure means the caller should back off and retry.
   */
  async #pushNarrowing(batch: Action[]): Promise<boolean> {
    const outcome = await this.#push(batch);
    if (outcome.kind === 'transient') return false;
    if (outcome.kind === 'reply') {
      this.#settle(batch, outcome.reply);
      return true;
    }
    if (batch.length === 1) {
      const [only] = batch as [Action];
      this.#o.logger.warn(
        { actionId: only.id, code: outcome.code, reason: outcome.message },
        'action refused for good',
      );
      this.#o.onSettled([], [{ id: only.id, reason: `${outcome.code}: ${outcome.message}` }], 0);
      return true;
    }
    // Halves keep clientSeq order: the first half is settled before the second is sent.
    const mid = Math.ceil(batch.length / 2);
    return (await this.#pushNarrowing(batch.slice(0, mid))) && (await this.#pushNarrowing(batch.slice(mid)));
  }

  async #push(batch: Action[]): Promise<PushOutcome> {
    const { nc, tenant, emit, now } = this.#o;
    const body = new TextEncoder().encode(JSON.stringify({ clientId: this.#o.wal.clientId, actions: batch }));
    const started = now();
    emit({ type: 'push-started', at: started, count: batch.length, bytes: body.byteLength });
    let outcome: PushOutcome;
    try {
      const msg = await nc.request(apiSubjects.push(tenant), body, { timeout: this.#o.requestTimeoutMs ?? 10_000 });
      const decoded = decodeWith(pushResponseSchema, msg.data, 'push reply');
      if (!decoded.ok) outcome = { kind: 'transient', code: 'internal', message: decoded.message };
      else if ('error' in decoded.value) {
        const { code, message } = decoded.value.error;
        // clock_drift is retried, not rejected: the hlc is fixed in the WAL, and the server
        // accepts it once its own clock catches up; rejecting it would throw intent away.
        const transient = isTransientCode(code) || code === 'clock_drift';
        outcome = transient ? { kind: 'transient', code, message } : { kind: 'permanent', code, message };
      } else outcome = { kind: 'reply', reply: decoded.value };
    } catch (err) {
      // No responders, timeouts, a closed connection: the API or the link is away.
      const message = err instanceof Error ? err.message : String(err);
      outcome = { kind: 'transient', code: 'unavailable', message };
    }
    if (outcome.kind === 'reply') {
      this.#o.onOnline(true, 'push acknowledged');
      const results = outcome.reply.results;
      emit({
        type: 'push-acked',
        at: now(),
        accepted: results.filter((r) => r.status === 'accepted').length,
        duplicate: results.filter((r) => r.status === 'duplicate').length,
        rejected: results.filter((r) => r.status === 'rejected').length,
        headSeq: outcome.reply.headSeq,
        latencyMs: Math.max(0, now() - started),
      });
    } else {
      if (outcome.kind === 'transient') this.#o.onOnline(false, outcome.message);
      emit({
        type: 'push-failed',
        at: now(),
        count: batch.length,
        code: outcome.code,
        message: outcome.message,
        retryInMs: 0,
      });
    }
    return outcome;
  }

  #settle(batch: Action[], reply: PushReply): void {
    const acks: Acknowledgement[] = [];
    const rejections: Rejection[] = [];
    const byId = new Map(reply.results.map((r) => [r.id as string, r]));
    for (const a of batch) {
      const r = byId.get(a.id);
      if (r === undefined) continue; // not answered: stays pending and goes again
      if (r.status === 'rejected') rejections.push({ id: a.id, reason: r.reason ?? 'rejected' });
      else acks.push({ id: a.id, seq: r.seq ?? 0 });
    }
    this.#o.onSettled(acks, rejections, reply.headSeq);
  }
}
