// Entity records as the SQLite stores keep them (record-codec.ts): the stored
// form reads back as the record it was written from, snapshots get exactly
// the wire form `recordToJson` makes, rows written in the wire form by earlier
// versions still read, and a damaged row is an internal error, never a record.
// Seed and run count come from FC_SEED / FC_RUNS so a failure replays.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { uuidv7 } from 'uuidv7';
import { ErrorCode, type Action } from '@ferry/contracts';
import {
  applyAction,
  decodeRecord,
  emptyRecord,
  encodeRecord,
  LWW_POLICY,
  recordToJson,
  recordWireJson,
  type EntityRec,
} from '../src/index.js';

const params = {
  numRuns: Number(process.env.FC_RUNS ?? 500),
  ...(process.env.FC_SEED === undefined ? {} : { seed: Number(process.env.FC_SEED) }),
};

const CLIENTS = [uuidv7(), uuidv7(), uuidv7()];

const admittedJson = fc.jsonValue({ maxDepth: 2 }).filter((v) => !JSON.stringify(v).includes('"__proto__"'));

/** Actions on one entity from a few clients, in any order: creates, updates, deletes, late arrivals. */
const history = fc.array(
  fc.record({
    client: fc.nat({ max: 2 }),
    op: fc.constantFrom('create', 'update', 'update', 'delete'),
    hlc: fc.integer({ min: 1, max: 50 }),
    // Values as the contracts admit them: a "__proto__" key at any depth is refused at the boundary.
    fields: fc.dictionary(fc.constantFrom('a', 'b', 'title', 'constructor', 'x y'), admittedJson, {
      minKeys: 1,
      maxKeys: 3,
    }),
  }),
  { minLength: 0, maxLength: 12 },
);

interface Step {
  readonly client: number;
  readonly op: string;
  readonly hlc: number;
  readonly fields: Record<string, unknown>;
}

function fold(steps: readonly Step[]): EntityRec {
  const rec = emptyRecord('notes', 'e1');
  steps.forEach((s, i) => {
    const action = {
      id: uuidv7(),
      clientId: CLIENTS[s.client],
      clientSeq: i + 1,
      collection: 'notes',
      entityId: 'e1',
      op: s.op,
      hlc: s.hlc * 4096 + i,
      seq: i + 1,
      ...(s.op === 'delete' ? {} : { fields: s.fields }),
    } as Action;
    applyAction(rec, action, LWW_POLICY);
  });
  return rec;
}

const wire = (rec: EntityRec) => JSON.stringify(recordToJson(rec));

describe('record-codec', () => {
  it('reads back what it wrote, and gives snapshots the wire form recordToJson makes', () => {
    fc.assert(
      fc.property(history, (steps) => {
        const rec = fold(steps);
        const row = encodeRecord(rec);
        expect(wire(decodeRecord(row, 'notes', 'e1'))).toBe(wire(rec));
        expect(recordWireJson(row, 'notes', 'e1')).toBe(wire(rec));
        // A stamp is written once however many cells share it.
        expect(row.length).toBeLessThanOrEqual(wire(rec).length);
      }),
      params,
    );
  });

  it('reads rows written in the wire form by earlier versions, and passes them on unchanged', () => {
    const rec = fold([
      { client: 0, op: 'create', hlc: 3, fields: { a: 1, title: 'x' } },
      { client: 1, op: 'update', hlc: 4, fields: { a: 2 } },
    ]);
    const old = wire(rec);
    expect(wire(decodeRecord(old, 'notes', 'e1'))).toBe(old);
    expect(recordWireJson(old, 'notes', 'e1')).toBe(old);
  });

  it.each([
    ['not JSON', '[1,'],
    ['another format', '[2,1,1,1,[],-1,-1,[],[]]'],
    ['a stamp index out of range', '[1,1,5,1,[5,"a","b"],3,-1,[],[]]'],
    ['a cell without a stamp', '[1,1,5,1,[],-1,-1,["a",1,-1],[]]'],
    ['a field named __proto__', `[1,1,5,1,[5,"${CLIENTS[0]}","${uuidv7()}"],0,-1,["__proto__",1,0],[]]`],
    ['a stamp that is not one', '[1,1,5,1,[5,"not a client","nor an id"],0,-1,[],[]]'],
  ])('refuses a damaged row (%s) as an internal error', (_name, row) => {
    expect(() => decodeRecord(row, 'notes', 'e1')).toThrow(expect.objectContaining({ code: ErrorCode.Internal }));
  });

  it.each([
    ['not JSON', '[1,'],
    ['another format', '[2,1,1,1,[],-1,-1,[],[]]'],
    ['a stamp index out of range', '[1,1,5,1,[5,"a","b"],3,-1,[],[]]'],
  ])('a snapshot of a row that does not decode (%s) is an internal error naming it', (_name, row) => {
    expect(() => recordWireJson(row, 'notes', 'e1')).toThrow(
      expect.objectContaining({ code: ErrorCode.Internal, message: expect.stringContaining('entities row notes/e1') }),
    );
  });
});
