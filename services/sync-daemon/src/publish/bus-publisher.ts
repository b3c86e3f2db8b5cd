/**
 * Everything the daemon tells the app on the local bus: StateBatches of the
 * entities that changed (and only those), sync events, and the replies to
 * status and query requests. Bad requests get an error reply, never a crash.
 */
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import {
  decodeWith,
  errorReply,
  queryRequestSchema,
  type BusSubjects,
  type EntityState,
  type QueryReply,
  type StatusReply,
  type SyncEvent,
} from '@ferry/contracts';

/** Stays well under NATS's default 1 MiB max_payload. */
const MAX_STATE_BYTES = 512 * 1024;
const encoder = new TextEncoder();

export interface BusPublisherOptions {
  readonly nc: NatsConnection;
  readonly subjects: BusSubjects;
  readonly logger: Logger;
  readonly status: () => StatusReply;
  readonly query: (collection: string, id: string | undefined) => EntityState[];
}

export class BusPublisher {
  readonly #o: BusPublisherOptions;
  readonly #subs: Subscription[] = [];

  constructor(options: BusPublisherOptions) {
    this.#o = options;
  }

  start(): void {
    const { nc, subjects, logger } = this.#o;
    this.#subs.push(
      nc.subscribe(subjects.status, {
        callback: (err, msg) => {
          if (err === null) msg.respond(encoder.encode(JSON.stringify(this.#o.status())));
        },
      }),
      nc.subscribe(subjects.query, {
        callback: (err, msg) => {
          if (err !== null) return;
          const request = decodeWith(queryRequestSchema, msg.data, 'query');
          const reply: QueryReply | ReturnType<typeof errorReply> = request.ok
            ? { entities: this.#o.query(request.value.collection, request.value.id) }
            : errorReply('invalid', request.message);
          if (!request.ok) logger.warn({ reason: request.message }, 'bad query request');
          msg.respond(encoder.encode(JSON.stringify(reply)));
        },
      }),
    );
  }

  /** Publishes the changed entities, split so that no message exceeds the payload budget. */
  publishState(entities: readonly EntityState[], cursor: number): void {
    if (entities.length === 0) return;
    let chunk: string[] = [];
    let bytes = 0;
    const flush = () => {
      if (chunk.length === 0) return;
      this.#o.nc.publish(
        this.#o.subjects.state,
        encoder.encode(`{"entities":[${chunk.join(',')}],"cursor":${cursor}}`),
      );
      chunk = [];
      bytes = 0;
    };
    for (const e of entities) {
      const json = JSON.stringify(e);
      if (bytes + json.length > MAX_STATE_BYTES) flush();
      chunk.push(json);
      bytes += json.length + 1;
    }
    flush();
  }

  publishEvent(event: SyncEvent): void {
    this.#o.nc.publish(this.#o.subjects.events, encoder.encode(JSON.stringify(event)));
  }

  stop(): void {
    for (const s of this.#subs) s.unsubscribe();
  }
}
