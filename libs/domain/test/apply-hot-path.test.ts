// The hot path of applyRemote: in-order writes skip the stamp comparisons, and
// each touched entity's view is taken while its record is in cache. These
// tests pin what that path must not change: conflicts, snapshot views, dedupe.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Action, EntityState } from '@ferry/contracts';
import { ClientSeqSet, Materializer, MemoryRecordStore, reconcile, recordToJson } from '../src/index.js';
import { actionsArb, CLIENTS, deliveryArb, fcParams } from './arbitraries.js';
import { act, plain, stateOf } from './helpers.js';

const [A, B, C, D] = CLIENTS;

describe('in-order writes', () => {
  it('an in-order write over a value the server sequenced after it is still reported (rule 3)', () => {
    const m = new Materializer();
    m.applyRemote([{ ...act({ op: 'create', hlc: 1, clientId: C, fields: { title: 'c' } }), seq: 1 }]);
    const earlier = { ...act({ op: 'update', hlc: 10, clientId: D, fields: { title: 'd' } }), seq: 5 };
    m.applyRemote([earlier]);
    // Later in the total order, but sequenced before `earlier`: concurrent for certain.
    const later = { ...act({ op: 'update', hlc: 20, clientId: A, fields: { title: 'a' } }), seq: 3 };
    const { conflicts, changed } = m.applyRemote([later]);
    expect(conflicts).toMatchObject([
      {
        field: 'title',
        resolution: 'lww',
        winner: { actionId: later.id, value: 'a' },
        loser: { actionId: earlier.id, value: 'd' },
      },
    ]);
    expect(changed.map((e) => e.fields)).toEqual([{ title: 'a' }]);
  });

  it('an in-order write of a field held from before the create makes it live, once', () => {
    const m = new Materializer();
    // The update precedes the create in the total order but arrives first: it is held, then dropped.
    m.applyRemote([act({ op: 'update', hlc: 1, clientId: B, fields: { body: 'held' } })]);
    m.applyRemote([act({ op: 'create', hlc: 2, clientId: B, fields: { title: 't' } })]);
    const { changed } = m.applyRemote([act({ op: 'update', hlc: 3, clientId: A, fields: { body: 'live' } })]);
    expect(changed.map((e) => e.fields)).toEqual([{ title: 't', body: 'live' }]);
    const rec = m.confirmedRecord('notes', '45');
    expect(rec?.held).toBeNull();
    expect(rec && recordToJson(rec).fields.body?.value).toBe('live');
  });

  it('sequenced deliveries in total order, with seqs in any order, equal the oracle and any other replica', () => {
    fc.assert(
      fc.property(
        actionsArb().chain((actions) =>
          fc.tuple(
            fc.constant(actions),
            fc.shuffledSubarray(
              actions.map((_, i) => i + 1),
              { minLength: actions.length, maxLength: actions.length },
            ),
            deliveryArb(actions),
          ),
        ),
        ([actions, seqs, other]) => {
          const sequenced = actions.map((a, i) => ({ ...a, seq: seqs[i] as number }));
          const inOrder = [...sequenced].sort((x, y) => x.hlc - y.hlc || (x.clientId < y.clientId ? -1 : 1));
          const m = new Materializer();
          for (const a of inOrder) m.applyRemote([a]);
          expect(plain(stateOf(m))).toEqual(plain(reconcile([], actions)));
          const byId = new Map(sequenced.map((a) => [a.id, a]));
          const r = new Materializer();
          for (const batch of other) r.applyRemote(batch.map((a) => byId.get(a.id) as Action));
          for (const e of m.entities()) {
            const mine = m.confirmedRecord(e.collection, e.id);
            const theirs = r.confirmedRecord(e.collection, e.id);
            expect(mine && recordToJson(mine)).toEqual(theirs && recordToJson(theirs));
          }
        },
      ),
      fcParams(),
    );
  });
});

describe('changed views', () => {
  it('are snapshots: later calls, on the same entities or not, never alter a view handed out', () => {
    fc.assert(
      fc.property(
        actionsArb().chain((actions) => deliveryArb(actions)),
        (batches) => {
          const m = new Materializer();
          const handedOut: [EntityState, string][] = [];
          for (const batch of batches) {
            for (const e of m.applyRemote(batch).changed) handedOut.push([e, JSON.stringify(e)]);
          }
          for (const [view, json] of handedOut) expect(JSON.stringify(view)).toBe(json);
        },
      ),
      fcParams(),
    );
  });

  it('with pending actions confirmed inside a batch, each view is what get() returns [M1]', () => {
    const LOCAL = CLIENTS[0];
    fc.assert(
      fc.property(
        actionsArb(30).chain((actions) =>
          fc.tuple(fc.constant(actions), fc.array(fc.nat(), { minLength: 1, maxLength: 8 })),
        ),
        ([actions, cuts]) => {
          const local = actions.filter((a) => a.clientId === LOCAL);
          const m = new Materializer();
          m.addPending(local);
          // The server's order: everything, our own actions echoed back among the others, in batches.
          let seq = 0;
          const stream: Action[] = actions.map((a) => ({ ...a, seq: ++seq }));
          const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((x, y) => x - y);
          let prev = 0;
          for (const p of [...points, stream.length]) {
            const { changed } = m.applyRemote(stream.slice(prev, p));
            prev = p;
            for (const e of changed) expect(e).toEqual(m.get(e.collection, e.id));
          }
          expect(m.pendingCount).toBe(0);
          expect(plain(stateOf(m))).toEqual(plain(reconcile([], actions)));
        },
      ),
      fcParams(),
    );
  });

  it('stay right when two materializers share one record store (marks of the other are ignored)', () => {
    fc.assert(
      fc.property(
        actionsArb().chain((actions) => fc.tuple(fc.constant(actions), deliveryArb(actions))),
        ([actions, batches]) => {
          const records = new MemoryRecordStore();
          const seen = new ClientSeqSet();
          const pair = [new Materializer({ records, seen }), new Materializer({ records, seen })] as const;
          batches.forEach((batch, i) => {
            const m = pair[i % 2] as Materializer;
            for (const e of m.applyRemote(batch).changed) expect(e).toEqual(m.get(e.collection, e.id));
          });
          expect(plain(stateOf(pair[0]))).toEqual(plain(reconcile([], actions)));
        },
      ),
      fcParams(),
    );
  });

  it('an entity touched many times in one batch is reported once, with its final state', () => {
    const m = new Materializer();
    const batch = [act({ op: 'create', hlc: 1, clientId: B, fields: { n: 0 } })];
    for (let i = 1; i <= 20; i++) batch.push(act({ op: 'update', hlc: 1 + i, clientId: B, fields: { n: i } }));
    batch.push(act({ op: 'create', hlc: 100, clientId: A, entityId: '46', fields: {} }));
    const { changed } = m.applyRemote(batch);
    expect(changed.map((e) => [e.id, e.fields, e.version])).toEqual([
      ['45', { n: 20 }, 21],
      ['46', {}, 1],
    ]);
  });

  it('are plain objects, as a literal would be (they are built with a constructor, for the GC)', () => {
    const m = new Materializer();
    const create = act({ op: 'create', hlc: 1, clientId: B, fields: { title: 't' } });
    const [view] = m.applyRemote([create]).changed;
    expect(Object.getPrototypeOf(view)).toBe(Object.prototype);
    expect(Object.getPrototypeOf(view?.fields)).toBe(Object.prototype);
    expect(view).toStrictEqual({
      collection: 'notes',
      id: '45',
      fields: { title: 't' },
      deleted: false,
      version: 1,
      hlc: 1,
    });
    expect(JSON.parse(JSON.stringify(view))).toStrictEqual(view);
  });
});

describe('ClientSeqSet with many interleaved clients', () => {
  it('answers exactly like a set of (clientId, clientSeq) pairs', () => {
    const ids = Array.from({ length: 9 }, (_, i) => `0190a000-0000-7000-8000-${String(i).padStart(12, '0')}`);
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat({ max: ids.length - 1 }), fc.integer({ min: 1, max: 12 })), { maxLength: 200 }),
        (pairs) => {
          const set = new ClientSeqSet();
          const model = new Set<string>();
          for (const [c, s] of pairs) {
            // A fresh string each time, as a parsed message would carry.
            const clientId = `${ids[c] as string}`.slice(0);
            const key = `${c}:${s}`;
            expect(set.add(clientId, s)).toBe(!model.has(key));
            model.add(key);
            expect(set.has(clientId, s)).toBe(true);
          }
        },
      ),
      fcParams(),
    );
  });
});
