// Regression tests for the findings of the first review of libs/domain
// (numbers refer to that review; each test failed before its fix).
import { describe, expect, it } from 'vitest';
import { conflictRecordSchema, fieldsSchema, parseWith } from '@ferry/contracts';
import {
  applyAction,
  emptyRecord,
  encodeHlc,
  HlcClock,
  Materializer,
  PolicyBook,
  recordToJson,
  receiveHlc,
  sendHlc,
  type CustomMerge,
} from '../src/index.js';
import { act } from './helpers.js';

const A = '0190a000-0000-7000-8000-00000000000a';
const B = '0190a000-0000-7000-8000-00000000000b';
const C = '0190a000-0000-7000-8000-00000000000c';
const D = '0190a000-0000-7000-8000-00000000000d';

describe('review regressions', () => {
  it('#4 a field named like an Object.prototype member never reads as inherited', () => {
    const m = new Materializer();
    m.applyRemote([{ ...act({ op: 'create', hlc: 1, clientId: B, fields: {} }), seq: 1 }]);
    m.addPending([act({ op: 'update', hlc: 5, clientId: A, fields: { title: 'x' } })]);
    const { conflicts } = m.applyRemote([
      { ...act({ op: 'update', hlc: 6, clientId: B, fields: { constructor: 'c' } }), seq: 2 },
    ]);
    expect(conflicts).toEqual([]);
    expect(m.get('notes', '45')?.fields).toEqual({ title: 'x', constructor: 'c' });
  });

  it('#3 a pending update of an entity nobody created changes nothing the app can see', () => {
    const m = new Materializer();
    const u = act({ op: 'update', hlc: 1, entityId: 'ghost', fields: { t: 1 } });
    expect(m.addPending([u]).changed).toEqual([]);
    expect(m.reject([{ id: u.id, reason: 'x' }]).changed).toEqual([]);
  });

  it('#5 one record per field, naming the value the app was shown', () => {
    const m = new Materializer();
    m.applyRemote([{ ...act({ op: 'create', hlc: 1, clientId: C, fields: {} }), seq: 1 }]);
    m.addPending([act({ op: 'update', hlc: 20, clientId: A, fields: { title: 'a' } })]);
    m.applyRemote([{ ...act({ op: 'update', hlc: 30, clientId: C, fields: { title: 'c' } }), seq: 2 }]);
    const { conflicts } = m.applyRemote([
      { ...act({ op: 'update', hlc: 10, clientId: D, fields: { title: 'd' } }), seq: 3 },
    ]);
    expect(m.get('notes', '45')?.fields.title).toBe('c');
    expect(conflicts).toHaveLength(1);
    expect(conflicts[0]).toMatchObject({ field: 'title', winner: { value: 'c' }, loser: { value: 'd' } });
  });

  it('#6 a remote write onto a confirmed tombstone with a pending delete is reported once', () => {
    const m = new Materializer();
    m.applyRemote([{ ...act({ op: 'create', hlc: 1, clientId: C, fields: {} }), seq: 1 }]);
    m.applyRemote([{ ...act({ op: 'delete', hlc: 2, clientId: C }), seq: 2 }]);
    m.addPending([act({ op: 'delete', hlc: 3, clientId: A })]);
    const { conflicts } = m.applyRemote([{ ...act({ op: 'update', hlc: 9, clientId: B, fields: { t: 1 } }), seq: 3 }]);
    expect(conflicts).toHaveLength(1);
    expect(conflicts[0]).toMatchObject({
      resolution: 'delete-wins',
      winner: { clientId: C, deleted: true },
      loser: { clientId: B },
    });
  });

  it('#7 a local write onto an entity already deleted is reported, not dropped silently', () => {
    const m = new Materializer();
    m.applyRemote([{ ...act({ op: 'create', hlc: 1, clientId: C, fields: {} }), seq: 1 }]);
    m.applyRemote([{ ...act({ op: 'delete', hlc: 2, clientId: C }), seq: 2 }]);
    const mine = act({ op: 'update', hlc: 3, clientId: A, fields: { t: 'late' } });
    const { conflicts } = m.addPending([mine]);
    expect(conflicts).toMatchObject([{ resolution: 'delete-wins', loser: { actionId: mine.id } }]);
    expect(conflictRecordSchema.safeParse(conflicts[0]).success).toBe(true);
  });

  it('#8 custom merges are not labelled as last-writer-wins conflicts', () => {
    const sum: CustomMerge = (state, a) => ({
      exists: true,
      deleted: false,
      fields: { n: Number(state.fields.n ?? 0) + Number(a.fields?.n ?? 0) },
    });
    const m = new Materializer({ policies: new PolicyBook({ notes: { kind: 'custom', name: 'sum', merge: sum } }) });
    m.addPending([act({ op: 'update', hlc: 5, clientId: A, fields: { n: 2 } })]);
    const { conflicts } = m.applyRemote([{ ...act({ op: 'update', hlc: 3, clientId: B, fields: { n: 3 } }), seq: 1 }]);
    expect(conflicts).toEqual([]);
    expect(m.get('notes', '45')?.fields.n).toBe(5);
  });

  it('#12 equal JSON objects with keys in another order are not a conflict', () => {
    const m = new Materializer();
    m.applyRemote([{ ...act({ op: 'create', hlc: 1, clientId: B, fields: { o: { x: 1, y: 2 } } }), seq: 1 }]);
    const { conflicts } = m.applyRemote([
      { ...act({ op: 'update', hlc: 0, clientId: C, fields: { o: { y: 2, x: 1 } } }), seq: 2 },
    ]);
    expect(conflicts).toEqual([]);
  });

  it('#13 NaN or fractional clock inputs are refused and never poison the clock', () => {
    expect(sendHlc(5, Number.NaN)).toMatchObject({ ok: false, code: 'clock_invalid' });
    expect(sendHlc(Number.NaN, 1)).toMatchObject({ ok: false, code: 'clock_invalid' });
    expect(receiveHlc(5, 10.5, 1, Number.POSITIVE_INFINITY)).toMatchObject({ ok: false, code: 'clock_invalid' });
    let wall = Number.NaN;
    const clock = new HlcClock({ now: () => wall, maxDriftMs: 60_000, last: encodeHlc(1_000) });
    expect(clock.send().ok).toBe(false);
    expect(clock.last).toBe(encodeHlc(1_000));
    wall = 2_000;
    expect(clock.send()).toEqual({ ok: true, hlc: encodeHlc(2_000) });
  });

  it('#1 a custom-merge record refuses to be serialised rather than losing its state', () => {
    const rec = emptyRecord('notes', '1');
    applyAction(rec, act({ op: 'create', hlc: 1, fields: { t: 1 } }), {
      kind: 'custom',
      name: 'id',
      merge: (s) => ({ ...s, exists: true }),
    });
    expect(() => recordToJson(rec)).toThrow(/custom-merge/);
  });

  it('#10 a nested "__proto__" key is refused, not silently dropped', () => {
    const raw = JSON.parse('{"title":{"__proto__":{"x":1},"y":2}}') as unknown;
    expect(parseWith(fieldsSchema, raw)).toEqual({ ok: false, message: 'title.__proto__: must not be "__proto__"' });
  });
});
