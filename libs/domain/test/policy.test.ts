// Unit tests for every reconciliation rule of DESIGN §4, each checked against
// both the oracle and the incremental materializer (in the awkward order).
import { describe, expect, it } from 'vitest';
import type { Action, EntityState } from '@ferry/contracts';
import {
  checkBaseVersion,
  ClientSeqSet,
  emptyRecord,
  applyAction,
  LWW_POLICY,
  Materializer,
  MergeRegistry,
  PolicyBook,
  policyBookFromConfig,
  reconcile,
  recordFromJson,
  recordToJson,
  viewRecord,
} from '../src/index.js';
import { act, plain, stateOf, type ActionDraft } from './helpers.js';

const A = '0190a000-0000-7000-8000-00000000000a';
const B = '0190a000-0000-7000-8000-00000000000b';

/** The entity after replaying in total order, and after applying in the given arrival order. */
function both(arrival: Action[]): { oracle: EntityState | undefined; incremental: EntityState | null } {
  const m = new Materializer();
  for (const a of arrival) m.applyRemote([a]);
  const oracle = [...reconcile([], arrival).values()][0];
  expect(plain(stateOf(m))).toEqual(plain(reconcile([], arrival)));
  return { oracle, incremental: m.get('notes', '45') };
}

describe('default policy (lww)', () => {
  it('create is idempotent: a second create of an existing id merges its fields by lww', () => {
    const first = act({ op: 'create', hlc: 10, fields: { title: 'a', body: 'x' } });
    const second = act({ op: 'create', hlc: 20, clientId: B, fields: { title: 'b' } });
    const { oracle } = both([second, first]);
    expect(oracle?.fields).toEqual({ title: 'b', body: 'x' });
    expect(oracle?.deleted).toBe(false);
    expect(oracle?.version).toBe(2);
  });

  it('update merges field by field; the later write in the total order wins per field', () => {
    const c = act({ op: 'create', hlc: 1, fields: { title: 't0', body: 'b0' } });
    const u1 = act({ op: 'update', hlc: 5, fields: { title: 't1' } });
    const u2 = act({ op: 'update', hlc: 3, clientId: B, fields: { title: 'late', body: 'b2' } });
    const { oracle } = both([c, u1, u2]);
    expect(oracle?.fields).toEqual({ title: 't1', body: 'b2' });
  });

  it('ties at equal hlc are broken by clientId, then by action id', () => {
    const c = act({ op: 'create', hlc: 1, fields: {} });
    const fromB = act({ op: 'update', hlc: 7, clientId: B, fields: { title: 'from B' } });
    const fromA = act({ op: 'update', hlc: 7, clientId: A, fields: { title: 'from A' } });
    expect(both([c, fromB, fromA]).oracle?.fields.title).toBe('from B'); // B > A
    expect(both([c, fromA, fromB]).oracle?.fields.title).toBe('from B');
    // Same hlc, same client: the larger action id wins.
    const x = act({ op: 'update', hlc: 9, fields: { title: 'x' } });
    const y = act({ op: 'update', hlc: 9, fields: { title: 'y' } });
    expect(x.id < y.id).toBe(true);
    expect(both([c, y, x]).oracle?.fields.title).toBe('y');
  });

  it('update-before-create: an update earlier in the total order never creates', () => {
    const u = act({ op: 'update', hlc: 1, fields: { title: 'ghost' } });
    expect(both([u]).oracle).toBeUndefined();
    expect(both([u]).incremental).toBeNull();
    const c = act({ op: 'create', hlc: 2, fields: { body: 'b' } });
    const { oracle, incremental } = both([u, c]);
    expect(oracle?.fields).toEqual({ body: 'b' }); // the earlier update had no entity to change
    expect(incremental?.fields).toEqual({ body: 'b' });
    expect(oracle?.version).toBe(2);
  });

  it('an update that arrives before its (earlier) create takes effect once the create is in', () => {
    const c = act({ op: 'create', hlc: 1, fields: { title: 'old' } });
    const u = act({ op: 'update', hlc: 2, fields: { title: 'new' } });
    const { oracle, incremental } = both([u, c]); // arrival: update first
    expect(oracle?.fields.title).toBe('new');
    expect(incremental?.fields.title).toBe('new');
  });

  it('delete wins: it tombstones the entity and clears its fields', () => {
    const c = act({ op: 'create', hlc: 1, fields: { title: 't' } });
    const d = act({ op: 'delete', hlc: 2 });
    const { oracle } = both([c, d]);
    expect(oracle).toMatchObject({ deleted: true, fields: {}, version: 2, hlc: 2 });
  });

  it('update-after-delete never resurrects, whatever the arrival order', () => {
    const c = act({ op: 'create', hlc: 1, fields: { title: 't' } });
    const d = act({ op: 'delete', hlc: 2 });
    const u = act({ op: 'update', hlc: 3, clientId: B, fields: { title: 'back?' } });
    for (const order of [
      [c, d, u],
      [u, d, c],
      [d, u, c],
      [c, u, d],
    ]) {
      expect(both(order).oracle).toMatchObject({ deleted: true, fields: {} });
    }
  });

  it('create after delete stays deleted; delete of a never-created entity is a tombstone', () => {
    const d = act({ op: 'delete', hlc: 1 });
    const c = act({ op: 'create', hlc: 2, fields: { title: 'again' } });
    expect(both([d, c]).oracle).toMatchObject({ deleted: true, fields: {} });
    expect(both([d]).oracle).toMatchObject({ deleted: true, version: 1 });
  });

  it('records survive a JSON round trip unchanged (snapshots, stores)', () => {
    const rec = emptyRecord('notes', '45');
    applyAction(rec, act({ op: 'update', hlc: 1, fields: { title: 'held' } }), LWW_POLICY);
    applyAction(rec, act({ op: 'create', hlc: 2, fields: { body: 'b' } }), LWW_POLICY);
    const back = recordFromJson(recordToJson(rec));
    expect(recordToJson(back)).toEqual(recordToJson(rec));
    expect(viewRecord(back)).toEqual(viewRecord(rec));
  });
});

describe('reject-stale', () => {
  it('accepts a matching baseVersion and rejects a stale one with the current state', () => {
    const rec = emptyRecord('accounts', '7');
    const create = act({ op: 'create', hlc: 1, collection: 'accounts', entityId: '7', fields: { balance: 10 } });
    expect(checkBaseVersion(null, create, viewRecord)).toEqual({ ok: true }); // absent = 0 = never seen
    applyAction(rec, create, LWW_POLICY);
    const fresh = act({
      op: 'update',
      hlc: 2,
      collection: 'accounts',
      entityId: '7',
      baseVersion: 1,
      fields: { balance: 20 },
    });
    expect(checkBaseVersion(rec, fresh, viewRecord)).toEqual({ ok: true });
    applyAction(rec, fresh, LWW_POLICY);
    expect(rec.version).toBe(2);
    const stale = act({
      op: 'update',
      hlc: 3,
      collection: 'accounts',
      entityId: '7',
      baseVersion: 1,
      fields: { balance: 5 },
    });
    const verdict = checkBaseVersion(rec, stale, viewRecord);
    expect(verdict).toMatchObject({ ok: false, reason: 'stale: baseVersion 1, current version 2' });
    if (!verdict.ok) expect(verdict.current?.fields).toEqual({ balance: 20 });
  });

  it('an absent baseVersion on an existing entity is stale', () => {
    const rec = emptyRecord('accounts', '7');
    applyAction(rec, act({ op: 'create', hlc: 1, fields: {} }), LWW_POLICY);
    expect(checkBaseVersion(rec, act({ op: 'update', hlc: 2, fields: { a: 1 } }), viewRecord).ok).toBe(false);
  });
});

describe('custom merges', () => {
  it('are registered by name and referenced from config', () => {
    const registry = new MergeRegistry().register('max', (state, action) => ({
      exists: true,
      deleted: false,
      fields: { n: Math.max(Number(state.fields.n ?? 0), Number(action.fields?.n ?? 0)) },
    }));
    const built = policyBookFromConfig({ scores: { policy: 'custom', merge: 'max' } }, registry);
    expect(built.ok).toBe(true);
    if (!built.ok) return;
    const policies = built.book;
    const m = new Materializer({ policies });
    m.applyRemote([
      act({ op: 'update', hlc: 2, collection: 'scores', entityId: 's', fields: { n: 5 } }),
      act({ op: 'update', hlc: 1, collection: 'scores', entityId: 's', fields: { n: 9 } }),
    ]);
    expect(m.get('scores', 's')?.fields).toEqual({ n: 9 });
    expect(() => registry.register('max', (s) => s)).toThrow(/already registered/);
  });

  it('a custom policy naming no registered merge is refused with the key', () => {
    expect(policyBookFromConfig({ scores: { policy: 'custom', merge: 'nope' } })).toEqual({
      ok: false,
      message: 'collections.scores.merge: no merge registered as "nope"',
    });
    expect(policyBookFromConfig({ scores: { policy: 'custom' } })).toMatchObject({ ok: false });
    expect(new PolicyBook().for('anything')).toBe(LWW_POLICY);
  });
});

describe('conflicts', () => {
  const localA = (p: ActionDraft) => act({ clientId: A, ...p });
  const remoteB = (p: ActionDraft) => act({ clientId: B, ...p });

  it('a pending local write that loses to a remote one is reported with both values', () => {
    const m = new Materializer();
    m.applyRemote([{ ...remoteB({ op: 'create', hlc: 1, fields: { title: '' } }), seq: 1 }]);
    const mine = localA({ op: 'update', hlc: 5, fields: { title: 'Shopping' } });
    m.addPending([mine]);
    const theirs = { ...remoteB({ op: 'update', hlc: 6, fields: { title: 'Groceries', body: 'milk' } }), seq: 2 };
    const { conflicts, changed } = m.applyRemote([theirs]);
    expect(conflicts).toEqual([
      {
        collection: 'notes',
        entityId: '45',
        field: 'title',
        winner: { actionId: theirs.id, clientId: B, hlc: 6, value: 'Groceries' },
        loser: { actionId: mine.id, clientId: A, hlc: 5, value: 'Shopping' },
        resolution: 'lww',
      },
    ]);
    expect(changed.map((e) => e.fields)).toEqual([{ title: 'Groceries', body: 'milk' }]);
  });

  it('a remote write that loses to a pending local one is reported, and local state is kept', () => {
    const m = new Materializer();
    m.applyRemote([{ ...remoteB({ op: 'create', hlc: 1, fields: {} }), seq: 1 }]);
    m.addPending([localA({ op: 'update', hlc: 9, fields: { title: 'mine' } })]);
    const { conflicts } = m.applyRemote([
      { ...remoteB({ op: 'update', hlc: 4, fields: { title: 'theirs' } }), seq: 2 },
    ]);
    expect(conflicts).toHaveLength(1);
    expect(conflicts[0]).toMatchObject({ field: 'title', winner: { value: 'mine' }, loser: { value: 'theirs' } });
    expect(m.get('notes', '45')?.fields.title).toBe('mine'); // a download never overwrites pending local changes
  });

  it('a late remote write that loses to a confirmed one from another client is reported', () => {
    const m = new Materializer();
    m.applyRemote([{ ...remoteB({ op: 'create', hlc: 1, fields: { title: 'x' } }), seq: 1 }]);
    m.applyRemote([{ ...remoteB({ op: 'update', hlc: 8, fields: { title: 'newer' } }), seq: 2 }]);
    const late = {
      ...act({ op: 'update', hlc: 3, clientId: '0190a000-0000-7000-8000-00000000000c', fields: { title: 'older' } }),
      seq: 3,
    };
    const { conflicts } = m.applyRemote([late]);
    expect(conflicts).toMatchObject([
      { field: 'title', winner: { value: 'newer' }, loser: { value: 'older' }, resolution: 'lww' },
    ]);
  });

  it('a sequential overwrite by another client is not a conflict', () => {
    const m = new Materializer();
    m.applyRemote([{ ...remoteB({ op: 'create', hlc: 1, fields: { title: 'x' } }), seq: 1 }]);
    const { conflicts } = m.applyRemote([
      { ...act({ op: 'update', hlc: 2, clientId: A, fields: { title: 'y' } }), seq: 2 },
    ]);
    expect(conflicts).toEqual([]);
  });

  it('a remote delete over pending local edits reports delete-wins', () => {
    const m = new Materializer();
    m.applyRemote([{ ...remoteB({ op: 'create', hlc: 1, fields: {} }), seq: 1 }]);
    const edit = localA({ op: 'update', hlc: 5, fields: { body: 'edit' } });
    m.addPending([edit]);
    const del = { ...remoteB({ op: 'delete', hlc: 3 }), seq: 2 };
    const { conflicts, changed } = m.applyRemote([del]);
    expect(conflicts).toMatchObject([
      {
        field: null,
        resolution: 'delete-wins',
        winner: { actionId: del.id, deleted: true },
        loser: { actionId: edit.id },
      },
    ]);
    expect(changed[0]).toMatchObject({ deleted: true, fields: {} });
  });

  it('a rejected pending action is reported and taken out of the local state', () => {
    const m = new Materializer();
    const create = localA({ op: 'create', hlc: 1, fields: { title: 'draft' } });
    m.addPending([create]);
    expect(m.get('notes', '45')?.fields.title).toBe('draft');
    const { conflicts, changed } = m.reject([{ id: create.id, reason: 'stale: baseVersion 0, current version 3' }]);
    expect(conflicts).toMatchObject([
      {
        resolution: 'rejected',
        winner: null,
        loser: { actionId: create.id },
        reason: 'stale: baseVersion 0, current version 3',
      },
    ]);
    expect(changed).toMatchObject([{ id: '45', deleted: true, version: 0 }]);
    expect(m.get('notes', '45')).toBeNull();
    expect(m.pendingCount).toBe(0);
  });

  it('confirming a pending action leaves the materialized state as it was', () => {
    const m = new Materializer();
    const create = localA({ op: 'create', hlc: 1, fields: { title: 'draft' } });
    m.addPending([create]);
    const before = m.get('notes', '45');
    expect(m.confirm([{ id: create.id, seq: 1 }]).changed).toEqual([]);
    expect(m.get('notes', '45')).toEqual(before);
    // The same action pulled back from the server is a duplicate, not a second version.
    expect(m.applyRemote([{ ...create, seq: 1 }]).duplicates).toBe(1);
    expect(m.get('notes', '45')?.version).toBe(1);
  });
});

describe('ClientSeqSet', () => {
  it('detects duplicates in O(1) in order and remembers out-of-order arrivals until the gap fills', () => {
    const set = new ClientSeqSet();
    expect(set.add(A, 1)).toBe(true);
    expect(set.add(A, 3)).toBe(true);
    expect(set.add(A, 1)).toBe(false);
    expect(set.add(A, 3)).toBe(false);
    expect(set.has(A, 2)).toBe(false);
    expect(set.add(A, 2)).toBe(true);
    expect(set.floors().get(A)).toBe(3);
    expect(set.has(B, 1)).toBe(false);
  });
});
