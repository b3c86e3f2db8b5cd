// The reconciler over a real SQLite file: confirmed ⊕ pending with the WAL as
// the pending set, atomic cursor, own actions pulled back, restarts, and
// agreement with the replay oracle for random interleavings.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { uuidv7 } from 'uuidv7';
import type { Action, ChangeEvent, StoredAction } from '@ferry/contracts';
import { Materializer, PolicyBook, reconcile, recordToJson } from '@ferry/domain';
import { recentConflicts } from '../src/observe/conflict-log.js';
import { Reconciler } from '../src/reconcile/reconciler.js';
import { WalStore } from '../src/wal/wal-store.js';

const NOW = 1_763_000_000_000;
const OTHER = '0190a000-0000-7000-8000-0000000000bb';
let dir: string;
let open: { wal: WalStore; rec: Reconciler }[];

function start(): { wal: WalStore; rec: Reconciler } {
  const wal = WalStore.open(join(dir, 'daemon.db'), { newId: uuidv7, now: () => NOW });
  const rec = new Reconciler({ wal, policies: new PolicyBook(), now: () => NOW });
  const pair = { wal, rec };
  open.push(pair);
  return pair;
}

let otherSeq = 0;
let serverSeq = 0;
function remote(entityId: string, op: Action['op'], fields?: Record<string, unknown>, hlcOffset = 0): StoredAction {
  const a: Record<string, unknown> = {
    id: uuidv7(),
    clientId: OTHER,
    clientSeq: ++otherSeq,
    collection: 'notes',
    entityId,
    op,
    hlc: (NOW + hlcOffset) * 4096,
    seq: ++serverSeq,
  };
  if (fields !== undefined) a.fields = fields;
  return a as StoredAction;
}
const change = (id: string, op: ChangeEvent['op'], fields?: Record<string, unknown>): ChangeEvent =>
  ({ collection: 'notes', id, op, ...(fields === undefined ? {} : { fields }) }) as ChangeEvent;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ferry-rec-'));
  open = [];
  otherSeq = 0;
  serverSeq = 0;
});
afterEach(() => {
  for (const p of open) p.wal.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('Reconciler', () => {
  it('shows local changes at once, and a download never overwrites a pending one [M2]', () => {
    const { wal, rec } = start();
    const base = remote('45', 'create', { title: '', body: 'b' });
    rec.applyPulled([base], base.seq);
    const { appended } = wal.appendMany([change('45', 'update', { title: 'Shopping' })]);
    expect(rec.viewsOf(appended)).toMatchObject([{ id: '45', fields: { title: 'Shopping', body: 'b' } }]);
    // An older remote title (made before ours) arrives: ours stays, a conflict is recorded.
    const older = remote('45', 'update', { title: 'Groceries' }, -10_000);
    const result = rec.applyPulled([older], older.seq);
    expect(result.changed).toMatchObject([{ id: '45', fields: { title: 'Shopping' } }]);
    expect(result.conflicts).toMatchObject([
      { field: 'title', winner: { value: 'Shopping' }, loser: { value: 'Groceries' } },
    ]);
    expect(rec.cursor).toBe(older.seq);
  });

  it('an acknowledged action pulled back is not applied twice, even after a restart [M4]', () => {
    const first = start();
    const [mine] = first.wal.appendMany([change('1', 'create', { t: 'x' })]).appended as [Action];
    first.rec.acknowledge([{ id: mine.id, seq: 7 }]);
    expect(first.rec.get('notes', '1')?.version).toBe(1);
    first.wal.close();
    const again = start();
    const result = again.rec.applyPulled([{ ...mine, seq: 7 }], 7);
    expect(result.duplicates).toBe(1);
    expect(again.rec.get('notes', '1')).toMatchObject({ version: 1, fields: { t: 'x' } });
    expect(again.wal.pendingCount()).toBe(0);
  });

  it('a pending action pulled back before its ack arrived is confirmed by the pull, then compacted', () => {
    const { wal, rec } = start();
    const [mine] = wal.appendMany([change('1', 'create', { t: 'x' })]).appended as [Action];
    rec.applyPulled([{ ...mine, seq: 3 }], 3);
    expect(wal.pendingCount()).toBe(0);
    // Acknowledged and under the cursor: its effect lives in confirmed state, the WAL row is gone.
    expect(wal.lookup(mine.id)).toBeUndefined();
    expect(rec.get('notes', '1')?.version).toBe(1);
    rec.acknowledge([{ id: mine.id, seq: 3 }]); // the late ack changes nothing
    expect(rec.get('notes', '1')?.version).toBe(1);
  });

  it('acks of the seqs right after the cursor move it over them, persisted and compacted, with no pull', () => {
    const first = start();
    const base = remote('1', 'create', { t: 'a' });
    first.rec.applyPulled([base], base.seq);
    const mine = first.wal.appendMany([change('1', 'update', { t: 'b' }), change('2', 'create', { t: 'c' })])
      .appended as [Action, Action];
    // In clientSeq order, as the uploader settles a batch.
    first.rec.acknowledge([
      { id: mine[0].id, seq: base.seq + 1 },
      { id: mine[1].id, seq: base.seq + 2 },
    ]);
    expect(first.rec.cursor).toBe(base.seq + 2);
    expect(first.wal.lookup(mine[0].id)).toBeUndefined(); // compacted: confirmed state holds it
    expect(first.rec.get('notes', '1')).toMatchObject({ fields: { t: 'b' }, version: 2 });
    first.wal.close();
    const again = start();
    expect(again.rec.cursor).toBe(base.seq + 2);
    expect(again.rec.get('notes', '2')).toMatchObject({ fields: { t: 'c' }, version: 1 });
  });

  it('acks given out of clientSeq order still confirm every action (the applied floor rises in order)', () => {
    const { wal, rec } = start();
    const mine = wal.appendMany([change('1', 'create', { t: 'a' }), change('1', 'update', { t: 'b' })]).appended as [
      Action,
      Action,
    ];
    rec.acknowledge([
      { id: mine[1].id, seq: 2 },
      { id: mine[0].id, seq: 1 },
    ]);
    expect(rec.cursor).toBe(2);
    expect(wal.pendingCount()).toBe(0);
    expect(rec.get('notes', '1')).toMatchObject({ fields: { t: 'b' }, version: 2 });
  });

  it('an ack above a seq someone else holds leaves the cursor for the pull, which applies ours once', () => {
    const { wal, rec } = start();
    const [mine] = wal.appendMany([change('1', 'create', { t: 'mine' })]).appended as [Action];
    const theirs = remote('2', 'create', { t: 'theirs' }); // seq 1, sequenced before ours
    serverSeq++;
    rec.acknowledge([{ id: mine.id, seq: 2 }]);
    expect(rec.cursor).toBe(0);
    const result = rec.applyPulled([theirs, { ...mine, seq: 2 }], 2);
    expect(result.duplicates).toBe(1);
    expect(rec.cursor).toBe(2);
    expect(rec.get('notes', '1')).toMatchObject({ version: 1 });
    expect(rec.get('notes', '2')).toMatchObject({ fields: { t: 'theirs' } });
  });

  it('a rejection removes the action from the local state and logs the conflict [M3]', () => {
    const { wal, rec } = start();
    const [mine] = wal.appendMany([change('9', 'create', { t: 'draft' })]).appended as [Action];
    const result = rec.reject([{ id: mine.id, reason: 'stale: baseVersion 0, current version 2' }]);
    expect(result.changed).toMatchObject([{ id: '9', deleted: true }]);
    expect(result.conflicts).toMatchObject([
      { resolution: 'rejected', reason: 'stale: baseVersion 0, current version 2' },
    ]);
    expect(rec.get('notes', '9')).toBeNull();
    expect(wal.db.prepare('SELECT count(*) AS n FROM conflicts').get()).toEqual({ n: 1 });
  });

  it('persists state and cursor together: a restart resumes exactly where it was', () => {
    const first = start();
    const a = remote('1', 'create', { t: 'a' });
    const b = remote('1', 'update', { t: 'b' }, 1);
    first.rec.applyPulled([a, b], b.seq);
    first.wal.close();
    const again = start();
    expect(again.rec.cursor).toBe(b.seq);
    expect(again.rec.get('notes', '1')).toMatchObject({ fields: { t: 'b' }, version: 2 });
    expect(again.wal.clock.last).toBeGreaterThan(b.hlc); // the clock moved past what it saw [C2]
  });

  it('agrees with the oracle over confirmed ∪ pending for random interleavings [M1]', () => {
    const move = fc.oneof(
      fc.record({
        kind: fc.constant('local' as const),
        id: fc.constantFrom('1', '2'),
        op: fc.constantFrom<Action['op']>('create', 'update', 'delete'),
        v: fc.nat(3),
      }),
      fc.record({
        kind: fc.constant('remote' as const),
        id: fc.constantFrom('1', '2'),
        op: fc.constantFrom<Action['op']>('create', 'update', 'delete'),
        v: fc.nat(3),
        dt: fc.integer({ min: -5, max: 5 }),
      }),
      fc.record({ kind: fc.constant('ack' as const) }),
      fc.record({ kind: fc.constant('reject' as const) }),
    );
    fc.assert(
      fc.property(fc.array(move, { maxLength: 25 }), (moves) => {
        rmSync(join(dir, 'daemon.db'), { force: true });
        rmSync(join(dir, 'daemon.db-wal'), { force: true });
        rmSync(join(dir, 'daemon.db-shm'), { force: true });
        const { wal, rec } = start();
        const confirmed: Action[] = [];
        for (const m of moves) {
          if (m.kind === 'local') {
            wal.appendMany([change(m.id, m.op, m.op === 'delete' ? undefined : { f: m.v })]);
          } else if (m.kind === 'remote') {
            const r = remote(m.id, m.op, m.op === 'delete' ? undefined : { f: m.v }, m.dt);
            rec.applyPulled([r], r.seq);
            confirmed.push(r);
          } else {
            const [oldest] = wal.readPending(0, 1);
            if (oldest === undefined) continue;
            if (m.kind === 'ack') {
              rec.acknowledge([{ id: oldest.id, seq: ++serverSeq }]);
              confirmed.push(oldest);
            } else rec.reject([{ id: oldest.id, reason: 'stale' }]);
          }
        }
        const pending = wal.readPending(0, 1000);
        const expected = reconcile([], [...confirmed, ...pending]);
        const actual = new Map(
          ['1', '2'].flatMap((id) => {
            const e = rec.get('notes', id);
            return e === null ? [] : [[`notes\u0000${id}`, e] as const];
          }),
        );
        expect(Object.fromEntries(actual)).toEqual(Object.fromEntries(expected));
        wal.close();
        open.pop();
      }),
      { numRuns: Number(process.env.FC_RUNS ?? 200) },
    );
  });

  it('bootstraps from a snapshot read page by page while the server moves on, and agrees with the oracle [B1][B2]', () => {
    type Step = 'remote' | 'local' | 'push' | 'push-ack-later' | 'ack-later' | 'pull' | 'page';
    const ids = ['1', '2', '3', '4'] as const;
    const step = (kinds: Step[]) =>
      fc.record({
        kind: fc.constantFrom(...kinds),
        id: fc.constantFrom(...ids),
        op: fc.constantFrom<Action['op']>('create', 'update', 'update', 'delete'),
        v: fc.nat(3),
        dt: fc.integer({ min: -3, max: 3 }),
      });
    const before = fc.array(step(['remote', 'local', 'push', 'push-ack-later', 'ack-later', 'pull']), {
      maxLength: 12,
    });
    const loading = fc.array(step(['remote', 'local', 'push', 'push-ack-later', 'ack-later', 'page']), {
      maxLength: 12,
    });
    const after = fc.array(step(['remote', 'local', 'push', 'push-ack-later', 'ack-later', 'pull']), {
      maxLength: 12,
    });
    fc.assert(
      fc.property(before, loading, after, (pre, load, catchUp) => {
        for (const f of ['daemon.db', 'daemon.db-wal', 'daemon.db-shm']) rmSync(join(dir, f), { force: true });
        const { wal, rec } = start();
        const server = new Materializer();
        const log: StoredAction[] = [];
        const store = (a: Action): number => {
          const stored: StoredAction = { ...a, seq: log.length + 1 };
          log.push(stored);
          server.applyRemote([stored]);
          return stored.seq;
        };
        let pushedUpTo = 0;
        const acksLater: { id: string; seq: number }[] = [];
        let snapshotSeq = 0;
        let nextPage = 0;
        const run = (m: { kind: Step; id: string; op: Action['op']; v: number; dt: number }): void => {
          const fields = m.op === 'delete' ? undefined : { f: m.v };
          if (m.kind === 'remote') {
            const { seq: _unused, ...r } = remote(m.id, m.op, fields, m.dt);
            store(r);
          } else if (m.kind === 'local') {
            wal.appendMany([change(m.id, m.op, fields)]);
          } else if (m.kind === 'push' || m.kind === 'push-ack-later') {
            // The uploader has one batch in flight at a time: acks arrive in clientSeq order.
            for (const ack of acksLater.splice(0)) rec.acknowledge([ack]);
            const [next] = wal.readPending(pushedUpTo, 1);
            if (next === undefined) return;
            pushedUpTo = next.clientSeq;
            const seq = store(next);
            if (m.kind === 'push') rec.acknowledge([{ id: next.id, seq }]);
            else acksLater.push({ id: next.id, seq });
          } else if (m.kind === 'ack-later') {
            const ack = acksLater.shift();
            if (ack !== undefined) rec.acknowledge([ack]);
          } else if (m.kind === 'pull') {
            const page = log.filter((a) => a.seq > rec.cursor).slice(0, 2);
            rec.applyPulled(page, page.at(-1)?.seq ?? rec.cursor);
          } else if (nextPage < ids.length) {
            // One entity per page, read from the server as it is now (later than the snapshot's seq).
            const r = server.confirmedRecord('notes', ids[nextPage++] as string);
            const last = nextPage === ids.length;
            rec.applySnapshotPage(r === undefined ? [] : [recordToJson(r)], snapshotSeq, last ? null : 't', !last);
          }
        };
        for (const m of pre) run(m);
        rec.beginBootstrap();
        snapshotSeq = log.length;
        for (const m of load) run(m);
        while (nextPage < ids.length) run({ kind: 'page', id: '1', op: 'update', v: 0, dt: 0 });
        // At the snapshot's seq, or past it over our own acknowledged actions only (Reconciler.acknowledge).
        expect(rec.cursor).toBeGreaterThanOrEqual(snapshotSeq);
        expect(log.slice(snapshotSeq, rec.cursor).every((a) => a.clientId === wal.clientId)).toBe(true);
        for (const m of catchUp) run(m);
        // Settle everything: deliver acks, push what is left, pull to the head.
        for (const ack of acksLater.splice(0)) rec.acknowledge([ack]);
        for (;;) {
          const [next] = wal.readPending(pushedUpTo, 1);
          if (next === undefined) break;
          pushedUpTo = next.clientSeq;
          rec.acknowledge([{ id: next.id, seq: store(next) }]);
        }
        while (rec.cursor < log.length) run({ kind: 'pull', id: '1', op: 'update', v: 0, dt: 0 });
        const expected = Object.fromEntries(reconcile([], log));
        const actual = Object.fromEntries(
          ids.flatMap((id) => {
            const e = rec.get('notes', id);
            return e === null ? [] : [[`notes\u0000${id}`, e] as const];
          }),
        );
        expect(actual).toEqual(expected);
        expect(rec.bootstrapPhase).toBe('none');
        expect(wal.pendingCount()).toBe(0);
        wal.close();
        open.pop();
      }),
      { numRuns: Number(process.env.FC_RUNS ?? 200) },
    );
  });

  it('an ack during a snapshot load is not shown twice once its page is in, whichever comes first [B2]', () => {
    const { wal, rec } = start();
    const [first, second] = wal.appendMany([change('1', 'create', { t: 'x' }), change('2', 'create', { t: 'y' })])
      .appended as [Action, Action];
    rec.beginBootstrap();
    const server = new Materializer();
    server.applyRemote([
      { ...first, seq: 1 },
      { ...second, seq: 2 },
    ]);
    const record = (id: string) =>
      recordToJson(server.confirmedRecord('notes', id) as NonNullable<ReturnType<Materializer['confirmedRecord']>>);
    // Entity 1: the ack is held first, then its page arrives.
    rec.acknowledge([{ id: first.id, seq: 1 }]);
    expect(rec.applySnapshotPage([record('1')], 2, 't1', true).changed).toMatchObject([{ id: '1', version: 1 }]);
    // Entity 2: its page arrives first (our create still pending on top), then the ack.
    rec.applySnapshotPage([record('2')], 2, 't2', true);
    rec.acknowledge([{ id: second.id, seq: 2 }]);
    expect(rec.get('notes', '2')).toMatchObject({ version: 1, fields: { t: 'y' } });
    expect(wal.pendingCount()).toBe(0);
    rec.applySnapshotPage([], 2, null, false);
    expect(rec.get('notes', '1')).toMatchObject({ version: 1 });
    expect(rec.bootstrapPhase).toBe('none');
  });

  it('damaged meta values (cursor, bootstrap phase) are internal errors that name them, not NaN or a guess', () => {
    const first = start();
    first.wal.setMeta('cursor', 'not a number');
    expect(() => new Reconciler({ wal: first.wal, policies: new PolicyBook(), now: () => NOW })).toThrow(
      expect.objectContaining({ code: 'internal', message: expect.stringContaining('meta cursor') }),
    );
    first.wal.setMeta('cursor', '3');
    first.wal.setMeta('bootstrap_phase', 'half-done');
    expect(() => new Reconciler({ wal: first.wal, policies: new PolicyBook(), now: () => NOW })).toThrow(
      expect.objectContaining({ code: 'internal', message: expect.stringContaining('bootstrap_phase') }),
    );
  });

  it('the conflict log reader reports a damaged row with its id instead of dropping it', () => {
    const { wal, rec } = start();
    const [mine] = wal.appendMany([change('9', 'create', { t: 'draft' })]).appended as [Action];
    rec.reject([{ id: mine.id, reason: 'stale' }]);
    wal.db.prepare("INSERT INTO conflicts (at, collection, entity_id, record) VALUES (1, 'notes', 'x', '{nope')").run();
    const read = recentConflicts(wal.db, 10);
    expect(read.conflicts).toMatchObject([{ conflict: { entityId: '9', resolution: 'rejected' } }]);
    expect(read.damaged).toEqual([expect.stringContaining('conflicts row 2')]);
  });

  it('entity rows are written in the compact form, and rows in the wire form of earlier versions still read', () => {
    const rowOf = (w: WalStore, id: string) =>
      w.db.prepare('SELECT record FROM entities WHERE entity_id = ?').pluck().get(id) as string;
    const { wal, rec } = start();
    const a = remote('1', 'create', { t: 'a', n: 1 });
    const b = remote('2', 'create', { t: 'b' });
    rec.applyPulled([a, b], b.seq);
    expect(rowOf(wal, '1')[0]).toBe('[');
    // Entity 2 as a daemon before the compact form left it: the wire form of the same record.
    const before = new Materializer();
    before.applyRemote([b]);
    const wire = JSON.stringify(recordToJson(before.confirmedRecord('notes', '2')!));
    expect(wire.length).toBeGreaterThan(rowOf(wal, '2').length * 1.5);
    wal.db.prepare("UPDATE entities SET record = ? WHERE entity_id = '2'").run(wire);
    wal.close();
    open.pop();
    const again = start();
    expect(again.rec.get('notes', '2')).toMatchObject({ fields: { t: 'b' }, version: 1 });
    const c = remote('2', 'update', { t: 'c' }, 1);
    expect(again.rec.applyPulled([c], c.seq).changed).toMatchObject([{ id: '2', fields: { t: 'c' }, version: 2 }]);
    expect(rowOf(again.wal, '2')[0]).toBe('['); // written back compact once changed
    expect(again.rec.get('notes', '1')).toMatchObject({ fields: { t: 'a', n: 1 }, version: 1 });
  });

  it.each([
    ['wire', '{"nope":1}'],
    ['compact', '[1,2,"x"]'],
  ])(
    'a damaged entity row (%s form) is an internal error that names it, and the cursor stays put',
    (_form, damaged) => {
      const { wal, rec } = start();
      const a = remote('1', 'create', { t: 'a' });
      rec.applyPulled([a], a.seq);
      wal.close();
      open.pop();
      const again = start();
      again.wal.db.prepare('UPDATE entities SET record = ?').run(damaged);
      const b = remote('1', 'update', { t: 'b' }, 1);
      expect(() => again.rec.applyPulled([b], b.seq)).toThrow(
        expect.objectContaining({ code: 'internal', message: expect.stringContaining('entities row notes/1') }),
      );
      expect(again.rec.cursor).toBe(a.seq);
    },
  );
});
