/**
 * The NATS face of the API: one queue-group subscription per verb on
 * `ferry.api.v1.*.<verb>`, the tenant taken from the subject, one reply per
 * request. A request can fail alone; nothing here may throw into the client.
 */
import { apiSubjects, ErrorCode, parseApiSubject, tenantIdSchema, type ApiVerb, type TenantId } from '@ferry/contracts';
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { RequestHandler } from '../push/push-handler.js';
import { encodeError, encodeFailure } from './reply.js';

export interface ApiServiceOptions {
  readonly nc: NatsConnection;
  /** Queue group shared by every API instance, so each request is answered once. */
  readonly queue: string;
  readonly handlers: Readonly<Record<ApiVerb, RequestHandler>>;
  readonly logger: Logger;
}

const VERB_SUBJECTS: Readonly<Record<ApiVerb, string>> = {
  push: apiSubjects.anyPush,
  pull: apiSubjects.anyPull,
  snapshot: apiSubjects.anySnapshot,
};

export class ApiService {
  readonly #options: ApiServiceOptions;
  readonly #subs: Subscription[] = [];
  /** Requests being answered; stop() waits for them so no acknowledged work goes unanswered. */
  readonly #inflight = new Set<Promise<void>>();

  constructor(options: ApiServiceOptions) {
    this.#options = options;
  }

  /** Subscribes and waits until the server has registered the subscriptions. */
  async run(): Promise<void> {
    const { nc, queue, logger } = this.#options;
    for (const verb of Object.keys(VERB_SUBJECTS) as ApiVerb[]) {
      const subject = VERB_SUBJECTS[verb];
      const sub = nc.subscribe(subject, {
        queue,
        callback: (err, msg) => {
          if (err !== null) {
            logger.error({ err, subject }, 'subscription failed');
            return;
          }
          this.#track(this.#answer(verb, msg));
        },
      });
      this.#subs.push(sub);
    }
    await nc.flush();
    logger.info({ subjects: Object.values(VERB_SUBJECTS), queue }, 'api subscriptions ready');
  }

  /** Stops taking requests (drains the subscriptions), then waits for the ones in flight. */
  async stop(): Promise<void> {
    const subs = this.#subs.splice(0);
    await Promise.allSettled(subs.map((s) => (s.isClosed() ? Promise.resolve() : s.drain())));
    while (this.#inflight.size > 0) await Promise.allSettled([...this.#inflight]);
  }

  /** Publishes the tenant's new head; a lost feed message only delays daemons until their next pull. */
  publishFeed(tenant: TenantId, headSeq: number): void {
    try {
      this.#options.nc.publish(apiSubjects.feed(tenant), `{"headSeq":${headSeq}}`);
    } catch (err) {
      this.#options.logger.warn({ err, tenant, headSeq }, 'feed publish failed');
    }
  }

  #track(work: Promise<void>): void {
    this.#inflight.add(work);
    void work.finally(() => this.#inflight.delete(work));
  }

  async #answer(verb: ApiVerb, msg: Msg): Promise<void> {
    const { logger } = this.#options;
    if (msg.reply === undefined || msg.reply === '') {
      logger.warn({ subject: msg.subject }, 'request without a reply subject ignored');
      return;
    }
    let reply: string;
    try {
      reply = await this.#replyFor(verb, msg);
    } catch (err) {
      logger.error({ err, subject: msg.subject }, 'request handler threw');
      reply = encodeFailure(err);
    }
    this.#respond(msg, reply);
  }

  #replyFor(verb: ApiVerb, msg: Msg): Promise<string> {
    const parts = parseApiSubject(msg.subject);
    const tenant = parts === null ? null : tenantIdSchema.safeParse(parts.tenant);
    if (tenant === null || !tenant.success) {
      this.#options.logger.info({ subject: msg.subject }, 'request for a malformed tenant refused');
      return Promise.resolve(
        encodeError(ErrorCode.Forbidden, `subject: "${msg.subject}" does not name a tenant ([a-z0-9][a-z0-9_-]{0,63})`),
      );
    }
    return this.#options.handlers[verb](tenant.data, msg.data);
  }

  #respond(msg: Msg, reply: string): void {
    try {
      msg.respond(reply);
    } catch (err) {
      // Typically a reply over max_payload, or the connection closing: say what we can.
      this.#options.logger.error({ err, subject: msg.subject, bytes: reply.length }, 'reply failed');
      try {
        msg.respond(encodeError(ErrorCode.Internal, 'the reply could not be sent; retry with a smaller limit'));
      } catch {
        // The connection is gone; the client's request times out and it retries.
      }
    }
  }
}
