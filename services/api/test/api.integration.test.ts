// The API over a real nats-server with a real store file: push/pull round
// trips, idempotent retries, concurrent clients, late arrivals, reject-stale,
// snapshots, retention resets, and every whole-request error code.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  entityRecordSchema,
  pullReplySchema,
  pushReplySchema,
  snapshotReplySchema,
  errorReplySchema,
  type Action,
  type EntityRecord,
  type PushReply,
} from '@ferry/contracts';
import {
  applyAction,
  emptyRecord,
  entityKey,
  LWW_POLICY,
  reconcile,
  recordFromJson,
  viewRecord,
  type EntityRec,
} from '@ferry/domain';
import type { NatsConnection } from '@nats-io/transport-node';
import { startNatsServer, type NatsServerHandle } from '@ferry/testing';
import { ask, client, startInProcessApi, subjects, type InProcessApi } from './support/api-fixture.js';
import { hlcAt, simClient, type SimClient } from './support/actions.js';

let nats: NatsServerHandle;
let api: InProcessApi;
let nc: NatsConnection;
let tenantCounter = 0;
const freshTenant = () => `t${process.pid}-${++tenantCounter}`;

async function push(tenant: string, c: SimClient, actions: Action[], conn = nc): Promise<PushReply> {
  return pushReplySchema.parse(await ask(conn, subjects(tenant).push, { clientId: c.clientId, actions }));
}

async function pull(tenant: string, since: number, limit = 1000, clientId?: string) {
  const body = clientId === undefined ? { since, limit } : { since, limit, clientId };
  return pullReplySchema.parse(await ask(nc, subjects(tenant).pull, body));
}

function expectError(reply: Record<string, unknown>, code: string, mentions?: string): void {
  const parsed = errorReplySchema.parse(reply);
  expect(parsed.error.code).toBe(code);
  if (mentions !== undefined) expect(parsed.error.message).toContain(mentions);
}

beforeAll(async () => {
  nats = await startNatsServer();
  api = await startInProcessApi(nats.url, {
    collections: { accounts: { policy: 'reject-stale' } },
    limits: { maxActionsPerBatch: 500 },
  });
  nc = await client(nats.url);
});

afterAll(async () => {
  await nc?.close();
  await api?.stop();
  await nats?.stop();
});

describe('push and pull', () => {
  it('push → pull round trip, and the feed announces the new head', async () => {
    const tenant = freshTenant();
    const feed = nc.subscribe(subjects(tenant).feed, { max: 1 });
    await nc.flush();
    const c = simClient();
    const actions = [c.create('n1', { title: 'a' }), c.update('n1', { body: 'b' }), c.create('n2', { title: 'c' })];
    const reply = await push(tenant, c, actions);
    expect(reply).toEqual({
      results: actions.map((a, i) => ({ id: a.id, status: 'accepted', seq: i + 1 })),
      headSeq: 3,
    });
    for await (const m of feed) expect(m.json()).toEqual({ headSeq: 3 });
    const page = await pull(tenant, 0);
    expect(page).toEqual({ actions: actions.map((a, i) => ({ ...a, seq: i + 1 })), next: 3, more: false });
  });

  it('retrying the same batch returns identical seqs and stores nothing new', async () => {
    const tenant = freshTenant();
    const c = simClient();
    const batch = [c.create('n', { v: 1 }), c.update('n', { v: 2 })];
    const first = await push(tenant, c, batch);
    const second = await push(tenant, c, batch);
    expect(second.results.map((r) => [r.id, r.seq])).toEqual(first.results.map((r) => [r.id, r.seq]));
    expect(second.results.every((r) => r.status === 'duplicate')).toBe(true);
    expect(second.headSeq).toBe(first.headSeq);
    const page = await pull(tenant, 0);
    expect(page.actions.map((a) => a.id)).toEqual(batch.map((a) => a.id));
  });

  it('four clients pushing concurrently get gap-free, strictly increasing seqs', async () => {
    const tenant = freshTenant();
    const conns = await Promise.all([0, 1, 2, 3].map(() => client(nats.url)));
    try {
      const perClient = await Promise.all(
        conns.map(async (conn, k) => {
          const c = simClient();
          const seqs: number[] = [];
          for (let b = 0; b < 10; b++) {
            const batch = Array.from({ length: 50 }, (_, i) => c.create(`c${k}-${b}-${i}`, { k, b, i }));
            const reply = await push(tenant, c, batch, conn);
            expect(reply.results.every((r) => r.status === 'accepted')).toBe(true);
            seqs.push(...reply.results.map((r) => r.seq as number));
          }
          return seqs;
        }),
      );
      for (const seqs of perClient) {
        for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBeGreaterThan(seqs[i - 1] as number);
      }
      const all = perClient.flat().sort((a, b) => a - b);
      expect(all).toEqual(Array.from({ length: 2000 }, (_, i) => i + 1));
      // The batches really interleaved: no client got one contiguous block of 500.
      expect(perClient.some((s) => (s.at(-1) as number) - (s[0] as number) > 499)).toBe(true);
    } finally {
      await Promise.all(conns.map((c) => c.close()));
    }
  });

  it('late arrival: a low hlc pushed after others gets a higher seq and is pulled from the previous head', async () => {
    const tenant = freshTenant();
    const now = Date.now();
    const onTime = simClient({ hlcBase: hlcAt(now) });
    const late = simClient({ hlcBase: hlcAt(now - 3_600_000) });
    const first = await push(tenant, onTime, [onTime.create('n', { title: 'on time' }), onTime.update('n', { x: 1 })]);
    const lateAction = late.update('n', { title: 'late' });
    expect(lateAction.hlc).toBeLessThan(hlcAt(now));
    const second = await push(tenant, late, [lateAction]);
    expect(second.results[0]?.seq).toBe(first.headSeq + 1);
    const page = await pull(tenant, first.headSeq);
    expect(page.actions.map((a) => a.id)).toEqual([lateAction.id]);
  });

  it('reject-stale: a stale baseVersion is rejected with the current state; a matching one is accepted and bumps the version', async () => {
    const tenant = freshTenant();
    const c = simClient({ collection: 'accounts' });
    await push(tenant, c, [c.create('acc-1', { balance: 100 })]);
    const stale = await push(tenant, c, [c.update('acc-1', { balance: 50 }, { baseVersion: 0 })]);
    expect(stale.results[0]).toMatchObject({
      status: 'rejected',
      current: { collection: 'accounts', id: 'acc-1', fields: { balance: 100 }, deleted: false, version: 1 },
    });
    expect(stale.results[0]?.seq).toBeUndefined();
    const ok = await push(tenant, c, [c.update('acc-1', { balance: 60 }, { baseVersion: 1 })]);
    expect(ok.results[0]).toMatchObject({ status: 'accepted', seq: 2 });
    const again = await push(tenant, c, [c.update('acc-1', { balance: 70 }, { baseVersion: 1 })]);
    expect(again.results[0]).toMatchObject({ status: 'rejected', current: { version: 2, fields: { balance: 60 } } });
    const snap = snapshotReplySchema.parse(await ask(nc, subjects(tenant).snapshot, { limit: 10 }));
    expect(snap.entities[0]).toMatchObject({ id: 'acc-1', version: 2 });
  });

  it('a client at 0, or behind the retention horizon, is told to reset; at the horizon it pulls on', async () => {
    const tenant = freshTenant();
    const c = simClient();
    await push(tenant, c, [c.create('a', {}), c.create('b', {}), c.create('c', {})]);
    await pull(tenant, 2, 10, c.clientId); // the only cursor: 2
    await api.app.purgeNow();
    expect(await pull(tenant, 0)).toEqual({ actions: [], next: 0, more: false, resetRequired: true });
    expect(await pull(tenant, 1)).toMatchObject({ resetRequired: true });
    const at = await pull(tenant, 2);
    expect([at.actions.map((a) => a.entityId), at.resetRequired]).toEqual([['c'], undefined]);
  });
});

describe('snapshot', () => {
  it('bootstraps a new device: snapshot pages, then a pull from its seq skipping what records hold, equals the oracle', async () => {
    const tenant = freshTenant();
    const a = simClient();
    const b = simClient();
    const all: Action[] = [];
    const send = async (c: SimClient, actions: Action[]) => {
      all.push(...actions);
      await push(tenant, c, actions);
    };
    await send(
      a,
      Array.from({ length: 6 }, (_, i) => a.create(`n${i}`, { title: `t${i}`, i })),
    );
    await send(b, [b.update('n1', { title: 'b1' }), b.remove('n2')]);

    const records: EntityRecord[] = [];
    let reply = snapshotReplySchema.parse(await ask(nc, subjects(tenant).snapshot, { limit: 2 }));
    const seq = reply.seq;
    records.push(...reply.entities);
    // Writes during the bootstrap: one to an entity already served, one to one not yet served.
    await send(a, [a.update('n0', { title: 'after-0' }), a.update('n5', { title: 'after-5' }), a.create('n9', {})]);
    while (reply.more) {
      reply = snapshotReplySchema.parse(await ask(nc, subjects(tenant).snapshot, { limit: 2, after: reply.after }));
      expect(reply.seq).toBe(seq);
      records.push(...reply.entities);
    }
    expect(reply.after).toBeNull();

    const state = new Map<string, EntityRec>(
      records.map((r) => [entityKey(r.collection, r.id), recordFromJson(entityRecordSchema.parse(r))]),
    );
    let since = seq;
    let skipped = 0;
    for (;;) {
      const page = await pull(tenant, since, 2);
      for (const act of page.actions) {
        const key = entityKey(act.collection, act.entityId);
        const rec = state.get(key);
        if (rec !== undefined && act.seq <= rec.seq) {
          skipped++;
          continue; // already folded into the snapshot record
        }
        const target = rec ?? emptyRecord(act.collection, act.entityId);
        applyAction(target, act, LWW_POLICY);
        state.set(key, target);
      }
      since = page.next;
      if (!page.more) break;
    }
    // n5's update and n9's create landed in their records before their pages were served.
    expect(skipped).toBe(2);
    const views = Object.fromEntries(
      [...state.entries()].map(([k, r]) => [k, viewRecord(r)] as const).filter(([, v]) => v !== null),
    );
    expect(views).toEqual(Object.fromEntries(reconcile([], all)));
  });

  it('refuses a forged page token', async () => {
    const reply = await ask(nc, subjects(freshTenant()).snapshot, { limit: 2, after: 'bm90LWEtdG9rZW4' });
    expectError(reply, 'invalid', 'after');
  });
});

describe('bad requests get their code, and the service answers the next valid request', () => {
  const big = (n: number) => 'x'.repeat(n);
  const cases: [string, (tenant: string, c: SimClient) => [subject: string, body: unknown], string, string?][] = [
    ['malformed JSON', (t) => [subjects(t).push, '{"clientId": "x", "actions": ['], 'invalid', 'not valid JSON'],
    ['bytes that are not UTF-8', (t) => [subjects(t).push, new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])], 'invalid'],
    [
      'a schema violation',
      (t, c) => [subjects(t).push, { clientId: c.clientId, actions: [{ ...c.create('n', {}), op: 'upsert' }] }],
      'invalid',
      'actions[0].op',
    ],
    [
      'an unknown key',
      (t, c) => [subjects(t).push, { clientId: c.clientId, actions: [c.create('n', {})], extra: 1 }],
      'invalid',
      'extra',
    ],
    [
      'an action of another client',
      (t, c) => [subjects(t).push, { clientId: c.clientId, actions: [simClient().create('n', {})] }],
      'invalid',
      'actions[0].clientId',
    ],
    [
      'an oversize batch (bytes)',
      (t, c) => [subjects(t).push, { clientId: c.clientId, actions: [c.create('n', { blob: big(1_000_000) })] }],
      'too_large',
      'maxBatchBytes',
    ],
    [
      'too many actions',
      (t, c) => [
        subjects(t).push,
        { clientId: c.clientId, actions: Array.from({ length: 501 }, (_, i) => c.create(`n${i}`, {})) },
      ],
      'too_large',
      'maxActionsPerBatch',
    ],
    [
      'a field value over the limit',
      (t, c) => [subjects(t).push, { clientId: c.clientId, actions: [c.create('n', { body: big(70_000) })] }],
      'too_large',
      'actions[0].fields.body',
    ],
    [
      'too many fields',
      (t, c) => [
        subjects(t).push,
        {
          clientId: c.clientId,
          actions: [c.create('n', Object.fromEntries(Array.from({ length: 257 }, (_, i) => [`f${i}`, i])))],
        },
      ],
      'too_large',
      'maxFieldsPerAction',
    ],
    [
      'a bad tenant token',
      (_t, c) => [subjects('ACME').push, { clientId: c.clientId, actions: [c.create('n', {})] }],
      'forbidden',
      'ACME',
    ],
    [
      'clock drift',
      (t, c) => [
        subjects(t).push,
        { clientId: c.clientId, actions: [c.create('n', {}, { hlc: hlcAt(Date.now() + 120_000) })] },
      ],
      'clock_drift',
      'actions[0].hlc',
    ],
    [
      'a clientSeq gap',
      (t, c) => [subjects(t).push, { clientId: c.clientId, actions: [c.create('n', {}, { clientSeq: 2 })] }],
      'client_seq_gap',
      'expected 1',
    ],
    ['a pull with limit 0', (t) => [subjects(t).pull, { since: 0, limit: 0 }], 'invalid', 'limit'],
    ['a pull that is not JSON', (t) => [subjects(t).pull, 'since=0'], 'invalid'],
    ['a snapshot with an unknown key', (t) => [subjects(t).snapshot, { limit: 1, cursor: 'x' }], 'invalid', 'cursor'],
  ];

  it.each(cases)('%s', async (_name, make, code, mentions) => {
    const tenant = freshTenant();
    const [subject, body] = make(tenant, simClient());
    expectError(await ask(nc, subject, body), code, mentions);
    const c = simClient();
    const next = await push(tenant, c, [c.create('after', { ok: true })]);
    expect(next.results[0]?.status).toBe('accepted');
  });

  it('a flood of garbage on one tenant does not disturb another tenant', async () => {
    const noisy = freshTenant();
    const quiet = freshTenant();
    const c = simClient();
    const garbage = Array.from({ length: 300 }, (_, i) =>
      ask(nc, i % 2 === 0 ? subjects(noisy).push : subjects(noisy).pull, i % 3 === 0 ? '\u0000' : { nope: i }),
    );
    // Sent in clientSeq order on one connection, interleaved with the garbage; NATS keeps their order.
    const good = Array.from({ length: 20 }, async (_, i) => {
      const reply = await push(quiet, c, [c.create(`q${i}`, {})]);
      return reply.results[0]?.status;
    });
    const [errors, statuses] = await Promise.all([Promise.all(garbage), Promise.all(good)]);
    expect(errors.every((r) => errorReplySchema.safeParse(r).success)).toBe(true);
    expect(statuses).toEqual(Array.from({ length: 20 }, () => 'accepted'));
    const page = await pull(quiet, 0);
    expect(page.actions.map((a) => a.entityId)).toEqual(Array.from({ length: 20 }, (_, i) => `q${i}`));
  });

  it('a request without a reply subject is logged and ignored', async () => {
    const tenant = freshTenant();
    const c = simClient();
    nc.publish(subjects(tenant).push, JSON.stringify({ clientId: c.clientId, actions: [c.create('n', {})] }));
    const d = simClient();
    expect((await push(tenant, d, [d.create('m', {})])).results[0]?.seq).toBe(1);
    expect(api.logs.some((l) => l.includes('request without a reply subject ignored'))).toBe(true);
  });
});

describe('replies fit the server max_payload', () => {
  let small: NatsServerHandle;
  let smallApi: InProcessApi;
  let smallNc: NatsConnection;
  beforeAll(async () => {
    small = await startNatsServer({ config: 'max_payload: 65536' });
    smallApi = await startInProcessApi(small.url, { collections: { accounts: { policy: 'reject-stale' } } });
    smallNc = await client(small.url);
  });
  afterAll(async () => {
    await smallNc?.close();
    await smallApi?.stop();
    await small?.stop();
  });

  it('pull pages shrink to the payload limit, and a push reply drops `current` rather than fail', async () => {
    const tenant = freshTenant();
    const c = simClient({ collection: 'accounts' });
    const blob = 'b'.repeat(20_000);
    const created = pushReplySchema.parse(
      await ask(smallNc, subjects(tenant).push, { clientId: c.clientId, actions: [c.create('acc', { blob })] }),
    );
    expect(created.results[0]?.status).toBe('accepted');
    const filler = simClient();
    for (let i = 0; i < 3; i++) {
      await ask(smallNc, subjects(tenant).push, {
        clientId: filler.clientId,
        actions: [filler.create(`f${i}`, { blob }), filler.create(`g${i}`, { blob })],
      });
    }
    // Each page is at least one action and at most what the server accepts.
    let since = 0;
    let total = 0;
    for (;;) {
      const reply = await smallNc.request(subjects(tenant).pull, JSON.stringify({ since, limit: 100 }), {
        timeout: 5000,
      });
      expect(reply.data.length).toBeLessThanOrEqual(65536);
      const page = pullReplySchema.parse(reply.json());
      expect(page.actions.length).toBeGreaterThan(0);
      total += page.actions.length;
      since = page.next;
      if (!page.more) break;
    }
    expect(total).toBe(7);
    // Five stale updates: with `current` the reply would carry 5 × 20 KB.
    const stale = Array.from({ length: 5 }, (_, i) => c.update('acc', { n: i }, { baseVersion: 0 }));
    const reply = pushReplySchema.parse(
      await ask(smallNc, subjects(tenant).push, { clientId: c.clientId, actions: stale }),
    );
    expect(reply.results.map((r) => r.status)).toEqual(Array.from({ length: 5 }, () => 'rejected'));
    expect(reply.results.every((r) => r.current === undefined && r.reason?.includes('stale'))).toBe(true);
    expect(smallApi.logs.some((l) => l.includes('push reply too large'))).toBe(true);
  });
});
