// Properties (a)–(c) of issue 2: the incremental materializer equals the replay
// oracle whatever the arrival order, duplication, batching and overlay moves.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { conflictRecordSchema, type Action, type EntityState } from '@ferry/contracts';
import {
  checkRecord,
  Materializer,
  MemoryPendingStore,
  PolicyBook,
  reconcile,
  recordToJson,
  type CustomMerge,
  type PendingStore,
} from '../src/index.js';
import { actionsArb, CLIENTS, deliveryArb, fcParams } from './arbitraries.js';
import { plain, stateOf } from './helpers.js';

describe('incremental materializer vs oracle', () => {
  it('(a) equals the oracle for any permutation, duplication and split into batches [I5]', () => {
    fc.assert(
      fc.property(
        actionsArb().chain((actions) => fc.tuple(fc.constant(actions), deliveryArb(actions))),
        ([actions, batches]) => {
          const m = new Materializer();
          for (const batch of batches) m.applyRemote(batch);
          expect(plain(stateOf(m))).toEqual(plain(reconcile([], actions)));
          for (const e of m.entities()) {
            const rec = m.confirmedRecord(e.collection, e.id);
            if (rec !== undefined) expect(checkRecord(rec)).toEqual([]);
          }
        },
      ),
      fcParams(),
    );
  });

  it('(a) reports exactly the touched, visible entities as changed, with their new state', () => {
    fc.assert(
      fc.property(
        actionsArb().chain((actions) => fc.tuple(fc.constant(actions), deliveryArb(actions))),
        ([, batches]) => {
          const m = new Materializer();
          const seen = new Set<string>();
          for (const batch of batches) {
            const fresh = batch.filter((a) => !seen.has(a.id) && (seen.add(a.id), true));
            const { changed } = m.applyRemote(batch);
            const touched = new Set(fresh.map((a) => `${a.collection}/${a.entityId}`));
            const reported = changed.map((e) => `${e.collection}/${e.id}`);
            // Exactly the touched entities that the app can see are reported, once each,
            // each with the state get() now returns.
            const visible = [...touched].filter((k) => {
              const [c, id] = k.split('/') as [string, string];
              return m.get(c, id) !== null;
            });
            expect([...reported].sort()).toEqual(visible.sort());
            for (const e of changed) expect(e).toEqual(m.get(e.collection, e.id));
          }
        },
      ),
      fcParams(),
    );
  });

  it('(b) replicas that receive the same set in different orders hold identical state', () => {
    fc.assert(
      fc.property(
        actionsArb().chain((actions) => fc.tuple(deliveryArb(actions), deliveryArb(actions))),
        ([one, two]) => {
          const a = new Materializer();
          const b = new Materializer();
          for (const batch of one) a.applyRemote(batch);
          for (const batch of two) b.applyRemote(batch);
          expect(plain(stateOf(a))).toEqual(plain(stateOf(b)));
          // Not only the views: the mergeable records themselves are identical.
          for (const e of a.entities()) {
            const ra = a.confirmedRecord(e.collection, e.id);
            const rb = b.confirmedRecord(e.collection, e.id);
            expect(ra && recordToJson(ra)).toEqual(rb && recordToJson(rb));
          }
        },
      ),
      fcParams(),
    );
  });

  it.each([
    ['batched', () => new MemoryPendingStore()],
    ['one-by-one', () => oneByOne(new MemoryPendingStore())],
  ])(
    '(c) any interleaving of pending, confirm, reject and remote ends in oracle(confirmed ∪ pending), %s store [M1]',
    (_name, pendingStore) => {
      const LOCAL = CLIENTS[0];
      const moveArb = fc.array(
        fc.oneof(
          fc.record({ kind: fc.constant('remote' as const), pick: fc.nat() }),
          fc.record({ kind: fc.constant('local' as const) }),
          fc.record({ kind: fc.constant('confirm' as const), pick: fc.nat() }),
          fc.record({ kind: fc.constant('reject' as const), pick: fc.nat() }),
          fc.record({ kind: fc.constant('echo' as const), pick: fc.nat() }),
        ),
        { maxLength: 60 },
      );
      fc.assert(
        fc.property(actionsArb(30), moveArb, (actions, moves) => {
          const local = actions.filter((a) => a.clientId === LOCAL);
          const remote = actions.filter((a) => a.clientId !== LOCAL);
          const m = new Materializer({ pending: pendingStore() });
          const applied: Action[] = []; // remote actions folded in
          const pending: Action[] = [];
          const confirmed: Action[] = [];
          let nextLocal = 0;
          let seq = 0;
          for (const move of moves) {
            if (move.kind === 'remote' && remote.length > 0) {
              const a = remote[move.pick % remote.length] as Action;
              const { conflicts } = m.applyRemote([{ ...a, seq: ++seq }]);
              // Every record is well-formed, and one action yields at most one per field.
              for (const c of conflicts) expect(conflictRecordSchema.safeParse(c).error).toBeUndefined();
              const fieldsHit = conflicts.map((c) => c.field ?? '*');
              expect(new Set(fieldsHit).size).toBe(fieldsHit.length);
              if (!applied.some((x) => x.id === a.id)) applied.push(a);
            } else if (move.kind === 'local' && nextLocal < local.length) {
              const a = local[nextLocal++] as Action;
              m.addPending([a]);
              pending.push(a);
            } else if (move.kind === 'confirm' && pending.length > 0) {
              // One to three acknowledgements at once, in clientSeq order as a push reply gives them.
              const taken = pending.splice(move.pick % pending.length, 1 + (move.pick % 3));
              taken.sort((x, y) => x.clientSeq - y.clientSeq);
              m.confirm(taken.map((a) => ({ id: a.id, seq: ++seq })));
              confirmed.push(...taken);
            } else if (move.kind === 'reject' && pending.length > 0) {
              const [a] = pending.splice(move.pick % pending.length, 1) as [Action];
              const { conflicts } = m.reject([{ id: a.id, reason: 'stale' }]);
              expect(conflicts).toHaveLength(1);
              expect(conflicts[0]?.resolution).toBe('rejected');
              for (const c of conflicts) expect(conflictRecordSchema.safeParse(c).error).toBeUndefined();
            } else if (move.kind === 'echo' && confirmed.length + pending.length > 0) {
              // Our own action comes back through a pull, acknowledged or not yet.
              const pool = [...confirmed, ...pending];
              const a = pool[move.pick % pool.length] as Action;
              m.applyRemote([{ ...a, seq: ++seq }]);
              const at = pending.findIndex((p) => p.id === a.id);
              if (at >= 0) confirmed.push(...pending.splice(at, 1));
            }
            expect(m.pendingCount).toBe(pending.length);
            expect(plain(stateOf(m))).toEqual(plain(reconcile([], [...applied, ...confirmed, ...pending])));
          }
        }),
        fcParams(),
      );
    },
  );

  it('custom merges: incremental equals the oracle even for an order-sensitive merge', () => {
    // Appends every write to a log field: the result depends on the total order.
    const appendLog: CustomMerge = (state, action) => {
      if (action.op === 'delete') return { exists: state.exists, deleted: true, fields: state.fields };
      const log = typeof state.fields.log === 'string' ? state.fields.log : '';
      const tag = `${action.hlc}:${JSON.stringify(action.fields ?? {})};`;
      return { exists: true, deleted: state.deleted, fields: { ...state.fields, log: log + tag } };
    };
    const policies = new PolicyBook({ notes: { kind: 'custom', name: 'append-log', merge: appendLog } });
    fc.assert(
      fc.property(
        actionsArb().chain((actions) => fc.tuple(fc.constant(actions), deliveryArb(actions))),
        ([actions, batches]) => {
          const m = new Materializer({ policies });
          for (const batch of batches) m.applyRemote(batch);
          expect(plain(stateOf(m))).toEqual(plain(reconcile([], actions, policies)));
        },
      ),
      fcParams(),
    );
  });

  it('version counts distinct actions and hlc is their maximum', () => {
    fc.assert(
      fc.property(actionsArb(), (actions) => {
        const states = reconcile([], actions);
        for (const e of states.values()) {
          const mine = actions.filter((a) => a.collection === e.collection && a.entityId === e.id);
          expect(e.version).toBe(mine.length);
          expect(e.hlc).toBe(Math.max(...mine.map((a) => a.hlc)));
        }
      }),
      fcParams(),
    );
  });
});

export type { EntityState };

/** The same store without its optional batched forms, so the materializer takes its one-by-one paths. */
function oneByOne(store: PendingStore): PendingStore {
  return {
    get size() {
      return store.size;
    },
    get: (id) => store.get(id),
    forEntity: (collection, id) => store.forEntity(collection, id),
    add: (action) => store.add(action),
    remove: (id, outcome) => store.remove(id, outcome),
    keys: (collection) => store.keys(collection),
    all: () => store.all(),
  };
}
