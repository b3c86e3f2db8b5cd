/**
 * Durable capture from the local bus (DESIGN §5): a JetStream stream holds
 * `ferry.<app>.changes`; a durable consumer delivers them; each micro-batch is
 * appended to the WAL (dead letters in the same transaction) and only then
 * acked. A redelivery after a crash is recognised by its eventId, or by its
 * stream sequence when the app sent none, and never applied twice.
 */
import {
  AckPolicy,
  DeliverPolicy,
  RetentionPolicy,
  StorageType,
  jetstream,
  jetstreamManager,
  type ConsumerMessages,
  type JsMsg,
} from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import {
  captureConsumerName,
  captureStreamName,
  type Action,
  type ChangeEvent,
  type ErrorCode,
  type SyncEvent,
} from '@ferry/contracts';
import type { WalStore } from '../wal/wal-store.js';
import { DEFAULT_CHANGE_LIMITS, validateChange, type ChangeLimits } from './validate-change.js';

/** What every capture source (the bus here, an app's SQLite outbox) is given. */
export interface CaptureOptions {
  readonly wal: WalStore;
  readonly logger: Logger;
  readonly emit: (event: SyncEvent) => void;
  readonly now: () => number;
  /** Called after each committed batch with the actions it appended. */
  readonly onAppended?: (actions: readonly Action[]) => void;
  /** null: any collection is captured (with the default policy). */
  readonly knownCollections?: ReadonlySet<string> | null;
  readonly limits?: ChangeLimits;
  readonly maxBatch?: number;
}

export interface BusCaptureOptions extends CaptureOptions {
  readonly nc: NatsConnection;
  readonly app: string;
  readonly changesSubject: string;
}

export class BusCapture {
  readonly #o: BusCaptureOptions;
  readonly #limits: ChangeLimits;
  readonly #maxBatch: number;
  #messages: ConsumerMessages | null = null;
  #loop: Promise<void> | null = null;
  #batch: JsMsg[] = [];
  #flushScheduled = false;

  constructor(options: BusCaptureOptions) {
    this.#o = options;
    this.#limits = options.limits ?? DEFAULT_CHANGE_LIMITS;
    this.#maxBatch = options.maxBatch ?? 1000;
  }

  get streamName(): string {
    return captureStreamName(this.#o.app);
  }

  /** Creates the stream and durable consumer when missing, then starts consuming. */
  async start(): Promise<void> {
    const { nc, app, changesSubject } = this.#o;
    const jsm = await jetstreamManager(nc);
    const stream = captureStreamName(app);
    const durable = captureConsumerName(app);
    try {
      await jsm.streams.info(stream);
    } catch {
      // Work-queue retention: an acked change is gone from the stream, so the stream stays small.
      await jsm.streams.add({
        name: stream,
        subjects: [changesSubject],
        retention: RetentionPolicy.Workqueue,
        storage: StorageType.File,
      });
    }
    try {
      await jsm.consumers.info(stream, durable);
    } catch {
      await jsm.consumers.add(stream, {
        durable_name: durable,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        // After a crash, unacked changes come back this soon (the WAL append takes milliseconds).
        ack_wait: 5_000_000_000, // ns
        max_ack_pending: 20_000,
      });
    }
    const consumer = await jetstream(nc).consumers.get(stream, durable);
    const messages = await consumer.consume({ max_messages: this.#maxBatch });
    this.#messages = messages;
    this.#loop = this.#consume(messages);
  }

  async stop(): Promise<void> {
    const messages = this.#messages;
    this.#messages = null;
    if (messages !== null) await messages.close();
    await this.#loop;
    this.#flush();
  }

  async #consume(messages: ConsumerMessages): Promise<void> {
    for await (const m of messages) {
      this.#batch.push(m);
      if (this.#batch.length >= this.#maxBatch) this.#flush();
      else if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        // Everything that arrived in this turn of the event loop goes into one transaction.
        setImmediate(() => this.#flush());
      }
    }
  }

  #flush(): void {
    this.#flushScheduled = false;
    const batch = this.#batch;
    if (batch.length === 0) return;
    this.#batch = [];
    const { wal, emit, now, logger } = this.#o;
    const events: ChangeEvent[] = [];
    const letters: { ref: string; code: ErrorCode; reason: string; data: Uint8Array }[] = [];
    for (const m of batch) {
      const verdict = validateChange(m.data, this.#limits, this.#o.knownCollections ?? null);
      const ref = String(m.seq);
      if (verdict.ok) {
        // Without an app eventId, the stream sequence makes a redelivery recognisable.
        events.push(verdict.event.eventId === undefined ? { ...verdict.event, eventId: `js:${ref}` } : verdict.event);
      } else {
        letters.push({ ref, code: verdict.code, reason: verdict.reason, data: m.data.subarray(0, 4096) });
      }
    }
    let appended;
    try {
      appended = wal.durably(() => {
        for (const l of letters) {
          wal.deadLetter({ sourceRef: l.ref, code: l.code, reason: l.reason, payload: l.data });
        }
        return wal.appendMany(events);
      });
    } catch (err) {
      // Rolled back: counters kept in memory must not run ahead of the file (no clientSeq holes).
      wal.reloadCounters();
      // Not acked: JetStream redelivers the whole batch after ack_wait; nothing is lost.
      logger.error({ err, count: batch.length }, 'capture batch could not be stored; it will be redelivered');
      for (const m of batch) m.nak(1000);
      return;
    }
    for (const m of batch) m.ack();
    const at = now();
    for (const l of letters) {
      logger.warn({ sourceRef: l.ref, code: l.code, reason: l.reason }, 'change dead-lettered');
      emit({ type: 'dead-lettered', at, code: l.code, reason: l.reason, sourceRef: l.ref });
    }
    for (const a of appended.appended) {
      const ev: SyncEvent = {
        type: 'capture',
        at,
        actionId: a.id,
        collection: a.collection,
        entityId: a.entityId,
        op: a.op,
      };
      emit(ev);
    }
    if (appended.appended.length > 0) this.#o.onAppended?.(appended.appended);
  }
}
