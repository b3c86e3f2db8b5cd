// Tenant isolation with deploy/nats/auth.conf on a real nats-server: a tenant's
// user reaches its own push/pull/snapshot/feed, and nothing of another tenant.
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pullReplySchema, pushReplySchema, snapshotReplySchema } from '@ferry/contracts';
import { PermissionViolationError, type NatsConnection, type Status } from '@nats-io/transport-node';
import { REPO_ROOT, startNatsServer, type NatsServerHandle } from '@ferry/testing';
import { ask, client, startInProcessApi, subjects, type InProcessApi } from './support/api-fixture.js';
import { simClient } from './support/actions.js';

// nats-server parses an environment variable's value like config: a value starting
// with a digit is read as a number and fails, so passwords start with a letter.
const secret = () => `p${randomBytes(12).toString('hex')}`;
const PASS = { api: secret(), acme: secret(), globex: secret() };

let nats: NatsServerHandle;
let api: InProcessApi;
let acme: NatsConnection;
let globex: NatsConnection;

/** Collects a connection's status events and lets a test await a matching one. */
class StatusWatch {
  readonly #seen: Status[] = [];
  readonly #waiters = new Set<{ match: (s: Status) => boolean; resolve: (s: Status) => void }>();

  constructor(nc: NatsConnection) {
    void (async () => {
      for await (const s of nc.status()) {
        this.#seen.push(s);
        for (const w of this.#waiters) {
          if (w.match(s)) {
            this.#waiters.delete(w);
            w.resolve(s);
          }
        }
      }
    })();
  }

  /** Resolves with the first permission violation reported for `subject` (past or future). */
  violation(subject: string, timeoutMs = 5000): Promise<PermissionViolationError> {
    const match = (s: Status) =>
      s.type === 'error' && s.error instanceof PermissionViolationError && s.error.subject === subject;
    const pick = (s: Status) => (s as Extract<Status, { type: 'error' }>).error as PermissionViolationError;
    const seen = this.#seen.find(match);
    if (seen !== undefined) return Promise.resolve(pick(seen));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no permission violation reported for ${subject}`)), timeoutMs);
      this.#waiters.add({
        match,
        resolve: (s) => {
          clearTimeout(timer);
          resolve(pick(s));
        },
      });
    });
  }
}
let acmeStatus: StatusWatch;

beforeAll(async () => {
  nats = await startNatsServer({
    config: readFileSync(join(REPO_ROOT, 'deploy', 'nats', 'auth.conf'), 'utf8'),
    env: { FERRY_API_PASS: PASS.api, FERRY_ACME_PASS: PASS.acme, FERRY_GLOBEX_PASS: PASS.globex },
  });
  api = await startInProcessApi(nats.url, { nats: { user: 'ferry-api', pass: PASS.api } });
  acme = await client(nats.url, { user: 'acme', pass: PASS.acme, inboxPrefix: '_INBOX_acme' });
  globex = await client(nats.url, { user: 'globex', pass: PASS.globex, inboxPrefix: '_INBOX_globex' });
  acmeStatus = new StatusWatch(acme);
});

afterAll(async () => {
  await acme?.close();
  await globex?.close();
  await api?.stop();
  await nats?.stop();
});

describe('tenant isolation with deploy/nats/auth.conf', () => {
  it('each tenant reaches its own push, pull, snapshot and feed through the API user', async () => {
    const feed = acme.subscribe(subjects('acme').feed, { max: 1 });
    await acme.flush();
    const c = simClient();
    const pushed = pushReplySchema.parse(
      await ask(acme, subjects('acme').push, { clientId: c.clientId, actions: [c.create('a1', { owner: 'acme' })] }),
    );
    expect(pushed.results[0]?.status).toBe('accepted');
    for await (const m of feed) expect(m.json()).toEqual({ headSeq: pushed.headSeq });
    const g = simClient();
    const gPushed = pushReplySchema.parse(
      await ask(globex, subjects('globex').push, {
        clientId: g.clientId,
        actions: [g.create('g1', { secret: 'globex-only' })],
      }),
    );
    expect(gPushed.results[0]?.status).toBe('accepted');
    // Each sees only its own data.
    const acmePull = pullReplySchema.parse(await ask(acme, subjects('acme').pull, { since: 0, limit: 100 }));
    expect(acmePull.actions.map((a) => a.entityId)).toEqual(['a1']);
    const acmeSnap = snapshotReplySchema.parse(await ask(acme, subjects('acme').snapshot, { limit: 100 }));
    expect(acmeSnap.entities.map((e) => e.id)).toEqual(['a1']);
  });

  it("tenant A cannot publish to tenant B's push subject (the client sees the violation)", async () => {
    const c = simClient();
    acme.publish(subjects('globex').push, JSON.stringify({ clientId: c.clientId, actions: [c.create('evil', {})] }));
    const err = await acmeStatus.violation(subjects('globex').push);
    expect(err.operation).toBe('publish');
    // And nothing reached globex's log.
    const gPull = pullReplySchema.parse(await ask(globex, subjects('globex').pull, { since: 0, limit: 100 }));
    expect(gPull.actions.map((a) => a.entityId)).not.toContain('evil');
  });

  it("tenant A cannot subscribe to tenant B's feed (the subscription is closed with the violation)", async () => {
    const sub = acme.subscribe(subjects('globex').feed);
    const closed = await sub.closed;
    expect(closed).toBeInstanceOf(PermissionViolationError);
    expect((closed as PermissionViolationError).operation).toBe('subscription');
  });

  it("tenant A cannot reach B's data through any subject", async () => {
    // Requests to B's verbs are refused by the server, not answered by the API.
    for (const subject of [subjects('globex').pull, subjects('globex').snapshot]) {
      const err = await ask(acme, subject, { since: 0, limit: 100 }, 2000).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).cause).toBeInstanceOf(PermissionViolationError);
    }
    // Listening anywhere that could carry B's messages or replies is refused.
    for (const subject of [
      '>',
      'ferry.>',
      'ferry.api.v1.>',
      'ferry.api.v1.globex.>',
      subjects('globex').push,
      '_INBOX.>',
      '_INBOX_globex.>',
    ]) {
      const closed = await acme.subscribe(subject).closed;
      expect(closed, subject).toBeInstanceOf(PermissionViolationError);
    }
    // A wildcard request cannot be published, and A's own verbs only ever answer with A's data.
    const own = pullReplySchema.parse(await ask(acme, subjects('acme').pull, { since: 0, limit: 100 }));
    expect(own.actions.every((a) => a.entityId !== 'g1')).toBe(true);
  });

  it('a tenant client without its inbox prefix cannot even receive replies', async () => {
    const noPrefix = await client(nats.url, { user: 'acme', pass: PASS.acme });
    try {
      const err = await ask(noPrefix, subjects('acme').pull, { since: 0, limit: 1 }, 2000).catch((e: unknown) => e);
      expect((err as Error).cause).toBeInstanceOf(PermissionViolationError);
    } finally {
      await noPrefix.close();
    }
  });
});
