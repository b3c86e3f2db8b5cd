// The ApiStore conformance suite: every store implementation runs it against
// itself (see sqlite-store.test.ts). Idempotency, gap-free seq, atomic
// batches, reject-stale, incremental records (also across checkpoints and
// reopening), snapshot paging, retention.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ErrorCode,
  FerryError,
  entityRecordSchema,
  storedActionSchema,
  type Action,
  type EntityRecord,
  type EntityState,
  type StoredAction,
  type TenantId,
} from '@ferry/contracts';
import { PolicyBook, REJECT_STALE_POLICY, entityKey, reconcile, recordFromJson, viewRecord } from '@ferry/domain';
import type { ApiStore, PullInput, SnapshotCursor } from '../src/store/store.js';
import { simClient, type SimClient } from './support/actions.js';

export interface StoreFixture {
  readonly store: ApiStore;
  /**
   * Closes the store and opens it again on the same data. A fixture may close
   * as a crash would (records folded in memory but never checkpointed), so
   * that reopening must recover them from the log.
   */
  reopen(): Promise<ApiStore>;
  dispose(): Promise<void>;
}

export type StoreFactory = (options: { policies: PolicyBook }) => Promise<StoreFixture>;

const T = 'acme' as TenantId;
const OTHER = 'globex' as TenantId;
const NOW = 1_800_000_000_000;
const BIG = 1 << 30;
const DAY = 86_400_000;

function pullAll(store: ApiStore, tenant: TenantId, since = 0, extra: Partial<PullInput> = {}) {
  return store.pull(tenant, { since, limit: 1_000_000, now: NOW, maxBytes: BIG, ...extra });
}

function parseActions(json: readonly string[]): StoredAction[] {
  return json.map((j) => storedActionSchema.parse(JSON.parse(j)));
}

async function allRecords(store: ApiStore, tenant: TenantId, limit = 1000): Promise<EntityRecord[]> {
  const out: EntityRecord[] = [];
  let after: SnapshotCursor | null = null;
  for (;;) {
    const page = await store.snapshot(tenant, { after, limit, maxBytes: BIG });
    out.push(...page.records.map((r) => entityRecordSchema.parse(JSON.parse(r))));
    if (!page.more) return out;
    after = page.after;
  }
}

/** Every record equals the replay oracle over `log`, and carries the highest seq of its entity's actions. */
async function expectRecordsReplay(store: ApiStore, tenant: TenantId, log: readonly StoredAction[]): Promise<void> {
  const records = await allRecords(store, tenant, 7);
  const viewed = new Map<string, EntityState>();
  for (const r of records) {
    const v = viewRecord(recordFromJson(r));
    if (v !== null) viewed.set(entityKey(v.collection, v.id), v);
  }
  expect(Object.fromEntries(viewed)).toEqual(Object.fromEntries(reconcile([], log)));
  const maxSeq = new Map<string, number>();
  for (const a of log) maxSeq.set(entityKey(a.collection, a.entityId), a.seq);
  expect(new Map(records.map((r) => [entityKey(r.collection, r.id), r.seq]))).toEqual(maxSeq);
}

/**
 * Batches from three note clients and one reject-stale client, over a few hot
 * entities (many updates to coalesce), with deletes and some stale rejections.
 * Returns the accepted actions with their seqs.
 */
async function pushMixed(store: ApiStore, tenant: TenantId, round: number): Promise<StoredAction[]> {
  const notes = [simClient(), simClient(), simClient()];
  const acc = simClient({ collection: 'accounts' });
  const accepted: StoredAction[] = [];
  const keep = (batch: Action[], results: { status: string; seq?: number | undefined }[]) =>
    results.forEach((r, i) => {
      if (r.status === 'accepted') accepted.push({ ...(batch[i] as Action), seq: r.seq as number });
    });
  for (let b = 0; b < 6; b++) {
    for (const [k, c] of notes.entries()) {
      const batch = Array.from({ length: 3 + ((b + k) % 5) }, (_, i) => {
        const id = `r${round}-n${(b * 3 + i + k) % 6}`;
        if ((b + i + k) % 9 === 8) return c.remove(id);
        return i % 2 === 0 ? c.create(id, { [`f${i % 3}`]: b, by: k }) : c.update(id, { title: `b${b}i${i}` });
      });
      keep(batch, (await pushOk(store, tenant, c, batch)).results);
    }
    // Versions only move with accepted actions: alternate a matching and a stale baseVersion.
    const version = accepted.filter((a) => a.collection === 'accounts').length;
    const batch = [
      b === 0
        ? acc.create(`r${round}-acc`, { balance: 0 })
        : acc.update(`r${round}-acc`, { balance: b }, { baseVersion: version }),
      acc.update(`r${round}-acc`, { balance: -1 }, { baseVersion: 0 }),
    ];
    keep(batch, (await pushOk(store, tenant, acc, batch)).results);
  }
  return accepted;
}

async function pushOk(store: ApiStore, tenant: TenantId, client: SimClient, actions: Action[], now = NOW) {
  return store.push(tenant, { clientId: client.clientId, actions, now });
}

export function describeStoreConformance(name: string, factory: StoreFactory): void {
  describe(`ApiStore conformance: ${name}`, () => {
    let fx: StoreFixture;
    let store: ApiStore;

    beforeEach(async () => {
      fx = await factory({ policies: new PolicyBook({ accounts: REJECT_STALE_POLICY }) });
      store = fx.store;
    });
    afterEach(async () => {
      await fx.dispose();
    });

    describe('seq', () => {
      it('assigns gap-free, strictly increasing seqs per tenant, independently across tenants', async () => {
        const a = simClient();
        const b = simClient();
        const seqs: number[] = [];
        for (let round = 0; round < 5; round++) {
          for (const c of [a, b]) {
            const out = await pushOk(store, T, c, [
              c.create(`e${round}`, { n: round }),
              c.update(`e${round}`, { m: 1 }),
            ]);
            seqs.push(...out.results.map((r) => r.seq ?? -1));
            expect(out.headSeq).toBe(seqs.length);
          }
        }
        expect(seqs).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
        const other = simClient();
        const o = await pushOk(store, OTHER, other, [other.create('x', {})]);
        expect(o.results[0]?.seq).toBe(1);
        expect((await store.stats(T)).headSeq).toBe(20);
      });

      it('stores each action with its seq, exactly as pushed', async () => {
        const c = simClient();
        const actions = [c.create('n1', { title: 'a', tags: ['x'], meta: { deep: [1, null] } }), c.remove('n1')];
        await pushOk(store, T, c, actions);
        const page = await pullAll(store, T);
        expect(parseActions(page.actions)).toEqual(actions.map((a, i) => ({ ...a, seq: i + 1 })));
      });
    });

    describe('idempotency', () => {
      it('a retried batch returns the original seqs and stores nothing new', async () => {
        const c = simClient();
        const batch = [c.create('n1', { t: 1 }), c.update('n1', { t: 2 }), c.create('n2', { t: 3 })];
        const first = await pushOk(store, T, c, batch);
        const before = await store.stats(T);
        const again = await pushOk(store, T, c, batch);
        expect(first.results.map((r) => r.status)).toEqual(['accepted', 'accepted', 'accepted']);
        expect(again.results).toEqual(first.results.map((r) => ({ ...r, status: 'duplicate' })));
        expect(again.stored).toBe(0);
        expect(again.headSeq).toBe(first.headSeq);
        expect(await store.stats(T)).toEqual(before);
        const records = await allRecords(store, T);
        expect(records.find((r) => r.id === 'n1')?.version).toBe(2);
      });

      it('a retry overlapping new actions dedupes the old part and appends the new', async () => {
        const c = simClient();
        const a1 = c.create('n', { v: 1 });
        const a2 = c.update('n', { v: 2 });
        const first = await pushOk(store, T, c, [a1, a2]);
        const a3 = c.update('n', { v: 3 });
        const second = await pushOk(store, T, c, [a1, a2, a3]);
        expect(second.results.map((r) => [r.status, r.seq])).toEqual([
          ['duplicate', first.results[0]?.seq],
          ['duplicate', first.results[1]?.seq],
          ['accepted', 3],
        ]);
      });

      it('an action repeated within one batch is stored once', async () => {
        const c = simClient();
        const a = c.create('n', { v: 1 });
        const out = await pushOk(store, T, c, [a, a]);
        expect(out.results.map((r) => [r.status, r.seq])).toEqual([
          ['accepted', 1],
          ['duplicate', 1],
        ]);
        expect((await store.stats(T)).actions).toBe(1);
      });

      it('a clientSeq reused by a different action is rejected, not stored', async () => {
        const c = simClient();
        const a = c.create('n', { v: 1 });
        await pushOk(store, T, c, [a]);
        const impostor = { ...c.create('m', {}), clientSeq: a.clientSeq };
        const out = await pushOk(store, T, c, [impostor]);
        expect(out.results[0]).toMatchObject({ status: 'rejected', reason: expect.stringContaining(a.id) });
        expect((await store.stats(T)).actions).toBe(1);
      });

      it('dedupe survives closing and reopening the store', async () => {
        const c = simClient();
        const batch = [c.create('n', { v: 1 })];
        const first = await pushOk(store, T, c, batch);
        store = await fx.reopen();
        const again = await pushOk(store, T, c, batch);
        expect(again.results[0]).toEqual({ ...first.results[0], status: 'duplicate' });
        const next = await pushOk(store, T, c, [c.update('n', { v: 2 })]);
        expect(next.results[0]?.seq).toBe(2);
      });
    });

    describe('atomic batches', () => {
      it('a clientSeq gap fails the whole batch: nothing stored, nothing changed', async () => {
        const c = simClient();
        await pushOk(store, T, c, [c.create('n', { v: 1 })]);
        const before = await store.stats(T);
        const recordsBefore = await allRecords(store, T);
        const ok1 = c.update('n', { v: 2 });
        const ok2 = c.create('m', { v: 3 });
        c.update('n', { v: 'skipped' }); // made but never sent: the hole
        const after = c.update('n', { v: 4 });
        const err = await pushOk(store, T, c, [ok1, ok2, after]).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(FerryError);
        expect((err as FerryError).code).toBe(ErrorCode.ClientSeqGap);
        expect((err as FerryError).message).toContain('actions[2].clientSeq');
        expect(await store.stats(T)).toEqual(before);
        expect(await allRecords(store, T)).toEqual(recordsBefore);
        // The prefix alone is still acceptable: the failed batch consumed no clientSeq.
        const retry = await pushOk(store, T, c, [ok1, ok2]);
        expect(retry.results.map((r) => r.status)).toEqual(['accepted', 'accepted']);
        expect(retry.results.map((r) => r.seq)).toEqual([2, 3]);
        // Records show the rolled-back attempt nowhere (no cached half-applied state).
        expect((await allRecords(store, T)).map((r) => [r.id, r.version])).toEqual([
          ['m', 1],
          ['n', 2],
        ]);
      });

      it('a first action from a new client must have clientSeq 1', async () => {
        const c = simClient();
        c.create('a', {});
        const err = await pushOk(store, T, c, [c.create('b', {})]).catch((e: unknown) => e);
        expect((err as FerryError).code).toBe(ErrorCode.ClientSeqGap);
        expect((await store.stats(T)).headSeq).toBe(0);
      });

      it('out-of-order clientSeqs within a batch are a gap', async () => {
        const c = simClient();
        const a1 = c.create('a', {});
        const a2 = c.create('b', {});
        const err = await pushOk(store, T, c, [a2, a1]).catch((e: unknown) => e);
        expect((err as FerryError).code).toBe(ErrorCode.ClientSeqGap);
      });
    });

    describe('records', () => {
      it('are maintained incrementally and equal the oracle, with seq and version', async () => {
        const clients = [simClient(), simClient(), simClient()];
        const all: Action[] = [];
        for (let i = 0; i < 60; i++) {
          const c = clients[i % 3] as SimClient;
          const id = `n${i % 7}`;
          const a =
            i % 11 === 5
              ? c.remove(id)
              : i % 2 === 0
                ? c.create(id, { title: `t${i}`, [`f${i % 4}`]: i })
                : c.update(id, { title: `u${i}` });
          all.push(a);
          await pushOk(store, T, c, [a]);
        }
        const records = await allRecords(store, T, 3);
        const oracle = reconcile([], all);
        const viewed = new Map<string, EntityState>();
        for (const r of records) {
          const v = viewRecord(recordFromJson(r));
          if (v !== null) viewed.set(entityKey(v.collection, v.id), v);
        }
        expect(Object.fromEntries(viewed)).toEqual(Object.fromEntries(oracle));
        const maxSeq = new Map<string, number>();
        all.forEach((a, i) => maxSeq.set(a.entityId, i + 1));
        for (const r of records) expect(r.seq).toBe(maxSeq.get(r.id));
      });
    });

    describe('write-behind records', () => {
      it('equal the replay of the log after pushes, after a checkpoint and after reopening (with a tail to recover)', async () => {
        const log = await pushMixed(store, T, 1);
        // Reopened straight after the pushes: whatever was only in memory must come back from the log.
        store = await fx.reopen();
        await expectRecordsReplay(store, T, log);
        log.push(...(await pushMixed(store, T, 2)));
        await expectRecordsReplay(store, T, log);
        await store.checkpoint();
        await expectRecordsReplay(store, T, log);
        // A tail on top of checkpointed records, touching the same hot entities again.
        log.push(...(await pushMixed(store, T, 2)));
        store = await fx.reopen();
        await expectRecordsReplay(store, T, log);
        expect(log.map((a) => a.seq)).toEqual(Array.from({ length: log.length }, (_, i) => i + 1));
        // And the reopened store goes on folding from there.
        log.push(...(await pushMixed(store, T, 3)));
        await expectRecordsReplay(store, T, log);
      });

      it('a snapshot right after a push sees every acknowledged action', async () => {
        const c = simClient();
        await pushOk(store, T, c, [c.create('a', { v: 1 }), c.create('b', { v: 1 })]);
        await store.checkpoint();
        const out = await pushOk(store, T, c, [c.update('a', { v: 2 }), c.remove('b'), c.create('c', { v: 3 })]);
        const records = new Map<string, EntityRecord>(
          (await store.snapshot(T, { after: null, limit: 10, maxBytes: BIG })).records.map((json) => {
            const r = entityRecordSchema.parse(JSON.parse(json));
            return [r.id, r];
          }),
        );
        expect(records.get('a')).toMatchObject({ seq: 3, version: 2, fields: { v: { value: 2 } } });
        expect(records.get('b')?.deleted).not.toBeNull();
        expect(records.get('c')).toMatchObject({ seq: out.headSeq, version: 1 });
        expect(await store.stats(T)).toMatchObject({ headSeq: 5, entities: 3 });
      });

      it('retention never purges log entries the records are not checkpointed through', async () => {
        const c = simClient();
        const reader = simClient();
        const log: StoredAction[] = [];
        const push = async (batch: Action[]) => {
          const out = await pushOk(store, T, c, batch);
          batch.forEach((a, i) => log.push({ ...a, seq: out.results[i]?.seq as number }));
        };
        await push([c.create('a', { v: 1 }), c.create('b', { v: 1 })]);
        await store.checkpoint();
        await push([c.update('a', { v: 2 }), c.update('b', { v: 2 }), c.create('c', {})]); // only in memory
        await pullAll(store, T, 5, { clientId: reader.clientId });
        expect((await store.purge({ now: NOW, windowMs: DAY })).actions).toBe(5);
        expect((await pullAll(store, T, 4)).resetRequired).toBe(true); // purged through 5 (pull never checkpoints)
        // The purged actions were in the records before their log entries went.
        await push([c.update('c', { v: 3 })]);
        store = await fx.reopen();
        await expectRecordsReplay(store, T, log);
      });
    });

    describe('reject-stale', () => {
      it('rejects a stale baseVersion with the current state, accepts a matching one and bumps the version', async () => {
        const c = simClient({ collection: 'accounts' });
        const create = await pushOk(store, T, c, [c.create('acc', { balance: 10 })]);
        expect(create.results[0]?.status).toBe('accepted');
        const stale = c.update('acc', { balance: 5 }, { baseVersion: 0 });
        const out = await pushOk(store, T, c, [stale]);
        expect(out.results[0]).toMatchObject({
          status: 'rejected',
          reason: expect.stringContaining('stale'),
          current: { collection: 'accounts', id: 'acc', fields: { balance: 10 }, deleted: false, version: 1 },
        });
        expect(out.stored).toBe(0);
        const good = await pushOk(store, T, c, [c.update('acc', { balance: 7 }, { baseVersion: 1 })]);
        expect(good.results[0]).toMatchObject({ status: 'accepted', seq: 2 });
        const rec = (await allRecords(store, T)).find((r) => r.id === 'acc');
        expect(rec?.version).toBe(2);
        expect(rec?.fields.balance?.value).toBe(7);
        // A retried rejection is rejected again, with the state as it is now.
        const retried = await pushOk(store, T, c, [stale]);
        expect(retried.results[0]).toMatchObject({
          status: 'rejected',
          current: { version: 2, fields: { balance: 7 } },
        });
      });

      it('a create on an existing reject-stale entity needs its version; an absent baseVersion means 0', async () => {
        const a = simClient({ collection: 'accounts' });
        const b = simClient({ collection: 'accounts' });
        await pushOk(store, T, a, [a.create('acc', { owner: 'a' })]);
        const out = await pushOk(store, T, b, [b.create('acc', { owner: 'b' })]);
        expect(out.results[0]?.status).toBe('rejected');
      });

      it('stale checks see earlier actions of the same batch', async () => {
        const c = simClient({ collection: 'accounts' });
        const out = await pushOk(store, T, c, [
          c.create('acc', { v: 1 }),
          c.update('acc', { v: 2 }, { baseVersion: 1 }),
          c.update('acc', { v: 3 }, { baseVersion: 1 }),
        ]);
        expect(out.results.map((r) => r.status)).toEqual(['accepted', 'accepted', 'rejected']);
      });

      it('lww collections ignore baseVersion', async () => {
        const c = simClient();
        await pushOk(store, T, c, [c.create('n', { v: 1 })]);
        const out = await pushOk(store, T, c, [c.update('n', { v: 2 }, { baseVersion: 0 })]);
        expect(out.results[0]?.status).toBe('accepted');
      });
    });

    describe('pull', () => {
      it('pages by limit and bytes with next and more', async () => {
        const c = simClient();
        await pushOk(
          store,
          T,
          c,
          Array.from({ length: 10 }, (_, i) => c.create(`n${i}`, { i })),
        );
        const p1 = await store.pull(T, { since: 0, limit: 4, now: NOW, maxBytes: BIG });
        expect(parseActions(p1.actions).map((a) => a.seq)).toEqual([1, 2, 3, 4]);
        expect([p1.next, p1.more, p1.resetRequired]).toEqual([4, true, false]);
        const p2 = await store.pull(T, { since: 4, limit: 100, now: NOW, maxBytes: 1 });
        expect(parseActions(p2.actions).map((a) => a.seq)).toEqual([5]); // at least one, whatever the budget
        const p3 = await store.pull(T, { since: 5, limit: 100, now: NOW, maxBytes: BIG });
        expect([p3.actions.length, p3.next, p3.more]).toEqual([5, 10, false]);
        const p4 = await store.pull(T, { since: 10, limit: 100, now: NOW, maxBytes: BIG });
        expect([p4.actions.length, p4.next, p4.more, p4.resetRequired]).toEqual([0, 10, false, false]);
      });

      it('an empty tenant answers since 0 with nothing; a cursor beyond the head requires a reset', async () => {
        expect(await pullAll(store, T)).toMatchObject({ actions: [], next: 0, more: false, resetRequired: false });
        expect((await pullAll(store, T, 3)).resetRequired).toBe(true);
      });

      it('late arrival: a low hlc pushed later gets a higher seq and is pulled from the previous head', async () => {
        const early = simClient({ hlcBase: 5_000_000 });
        const late = simClient({ hlcBase: 1_000 });
        const first = await pushOk(store, T, early, [early.create('n', { who: 'early' })]);
        const second = await pushOk(store, T, late, [late.update('n', { who: 'late' })]);
        expect(second.results[0]?.seq).toBeGreaterThan(first.headSeq);
        const page = await pullAll(store, T, first.headSeq);
        expect(parseActions(page.actions).map((a) => a.clientId)).toEqual([late.clientId]);
      });
    });

    describe('snapshot', () => {
      it('pages every record once, pinned to the head of its first page', async () => {
        const c = simClient();
        await pushOk(
          store,
          T,
          c,
          Array.from({ length: 9 }, (_, i) => c.create(`n${i}`, { i })),
        );
        const p1 = await store.snapshot(T, { after: null, limit: 4, maxBytes: BIG });
        expect([p1.records.length, p1.seq, p1.more]).toEqual([4, 9, true]);
        // Changes after the first page do not move the snapshot's seq; records say how far they reach.
        await pushOk(store, T, c, [c.update('n8', { i: 'later' }), c.create('z', {})]);
        const ids: string[] = p1.records.map((r) => entityRecordSchema.parse(JSON.parse(r)).id);
        let after = p1.after;
        let last = p1;
        while (last.more) {
          last = await store.snapshot(T, { after, limit: 4, maxBytes: BIG });
          expect(last.seq).toBe(9);
          ids.push(...last.records.map((r) => entityRecordSchema.parse(JSON.parse(r)).id));
          after = last.after;
        }
        expect(ids).toEqual([...Array.from({ length: 9 }, (_, i) => `n${i}`), 'z']);
        expect(last.after).toBeNull();
        const n8 = (await allRecords(store, T)).find((r) => r.id === 'n8');
        expect(n8?.seq).toBe(10);
      });

      it('includes tombstones and respects the byte budget (at least one record)', async () => {
        const c = simClient();
        await pushOk(store, T, c, [c.create('a', {}), c.create('b', {}), c.remove('a')]);
        const p = await store.snapshot(T, { after: null, limit: 10, maxBytes: 1 });
        expect(p.records.length).toBe(1);
        expect(entityRecordSchema.parse(JSON.parse(p.records[0] as string)).deleted).not.toBeNull();
        expect(p.more).toBe(true);
      });

      it('an unknown tenant has an empty snapshot at seq 0', async () => {
        expect(await store.snapshot(OTHER, { after: null, limit: 10, maxBytes: BIG })).toEqual({
          records: [],
          seq: 0,
          after: null,
          more: false,
        });
      });
    });

    describe('retention', () => {
      it('purges log entries and tombstones at or below the lowest cursor of clients seen within the window', async () => {
        const c = simClient();
        const r1 = simClient();
        const r2 = simClient();
        await pushOk(store, T, c, [
          c.create('gone', {}),
          c.remove('gone'),
          c.create('kept', {}),
          c.update('kept', { x: 1 }),
        ]);
        await pushOk(store, T, c, [c.create('late', {}), c.remove('late')]); // seqs 5, 6
        await pullAll(store, T, 4, { clientId: r1.clientId });
        await pullAll(store, T, 6, { clientId: r2.clientId });
        const report = await store.purge({ now: NOW, windowMs: 30 * DAY });
        expect(report).toMatchObject({ tenants: 1, actions: 4, tombstones: 1 });
        expect(await store.stats(T)).toMatchObject({ headSeq: 6, purgedThrough: 4, actions: 2 });
        const ids = (await allRecords(store, T)).map((r) => r.id).sort();
        expect(ids).toEqual(['kept', 'late']); // 'late' was deleted at seq 6, above the horizon
        // At the horizon a pull still works; below it (and from 0) the client must re-bootstrap.
        expect(parseActions((await pullAll(store, T, 4)).actions).map((a) => a.seq)).toEqual([5, 6]);
        expect((await pullAll(store, T, 3)).resetRequired).toBe(true);
        expect((await pullAll(store, T, 0)).resetRequired).toBe(true);
      });

      it('clients not seen within the window no longer hold the horizon; with no cursor nothing is purged', async () => {
        const c = simClient();
        const old = simClient();
        const fresh = simClient();
        await pushOk(store, T, c, [c.create('a', {}), c.create('b', {}), c.create('c', {})]);
        expect((await store.purge({ now: NOW, windowMs: DAY })).actions).toBe(0); // nobody pulled yet
        await store.pull(T, { since: 1, limit: 10, now: NOW - 10 * DAY, maxBytes: BIG, clientId: old.clientId });
        await store.pull(T, { since: 3, limit: 10, now: NOW, maxBytes: BIG, clientId: fresh.clientId });
        expect((await store.purge({ now: NOW, windowMs: 30 * DAY })).actions).toBe(1); // old still counts
        expect((await store.purge({ now: NOW, windowMs: DAY })).actions).toBe(2); // old is out of the window
        expect((await store.stats(T)).purgedThrough).toBe(3);
        expect((await pullAll(store, T, 1)).resetRequired).toBe(true);
      });

      it('keeps duplicates recognisable after their log entries were purged', async () => {
        const c = simClient();
        const batch = [c.create('a', {}), c.create('b', {})];
        await pushOk(store, T, c, batch);
        await pullAll(store, T, 2, { clientId: c.clientId });
        await store.purge({ now: NOW, windowMs: DAY });
        const again = await pushOk(store, T, c, batch);
        expect(again.results.map((r) => r.status)).toEqual(['duplicate', 'duplicate']);
        expect(again.stored).toBe(0);
        expect((await store.stats(T)).headSeq).toBe(2);
      });

      it('purges rejections older than the window', async () => {
        const c = simClient({ collection: 'accounts' });
        await pushOk(store, T, c, [c.create('x', {}), c.update('x', { v: 1 }, { baseVersion: 7 })], NOW - 40 * DAY);
        expect((await store.purge({ now: NOW, windowMs: 30 * DAY })).rejections).toBe(1);
      });
    });
  });
}
