// The fast paths (push requests, pull replies, change events) never pass what
// zod refuses, and return exactly what zod would. Seed and run count come from
// FC_SEED / FC_RUNS so a failure replays.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  changeEventSchema,
  pullReplySchema,
  pushRequestSchema,
  surelyValidChangeEvent,
  surelyValidPullReply,
  surelyValidPushRequest,
} from '../src/index.js';
import { uuidv7 } from 'uuidv7';

const params = {
  numRuns: Number(process.env.FC_RUNS ?? 2000),
  ...(process.env.FC_SEED === undefined ? {} : { seed: Number(process.env.FC_SEED) }),
};

const CLIENT = uuidv7();
const uuidish = fc.oneof(
  fc.constant(CLIENT),
  fc.constant(uuidv7()),
  fc.uuid(),
  fc.constant('01890a5d-ac96-774b-bcce-b302099a8057'),
  fc.constant('01890a5d-ac96-474b-bcce-b302099a8057'), // v4-shaped
  fc.constant('not-a-uuid'),
  fc.constant('00000000-0000-0000-0000-000000000000'),
  fc.string(),
);
const intish = fc.oneof(
  fc.integer({ min: -3, max: 5 }),
  fc.constant(Number.MAX_SAFE_INTEGER),
  fc.constant(2 ** 53),
  fc.double(),
  fc.constant('1'),
);
const jsonish = fc.oneof(
  fc.jsonValue(),
  fc.constant(undefined),
  fc.constant(() => 1),
  fc.constant(new Date(0)),
  fc.constant(Number.NaN),
);
const fieldsish = fc.oneof(
  fc.dictionary(
    fc.oneof(fc.string({ maxLength: 4 }), fc.constant(''), fc.constant('x'.repeat(129)), fc.constant('__proto__')),
    jsonish,
    { maxKeys: 4 },
  ),
  fc.constant({}),
  fc.constant([]),
  fc.constant(null),
  fc.constant(undefined),
);
const actionish = fc.record(
  {
    id: uuidish,
    clientId: uuidish,
    clientSeq: intish,
    collection: fc.oneof(
      fc.constant('notes'),
      fc.constant('_x9'),
      fc.constant('9bad'),
      fc.constant('a.b'),
      fc.constant('x'.repeat(65)),
      fc.string(),
    ),
    entityId: fc.oneof(
      fc.constant('e1'),
      fc.constant(''),
      fc.constant('x'.repeat(257)),
      fc.constant('\ud800x'),
      fc.constant('\u{1F600}'),
      fc.string(),
      fc.integer(),
    ),
    op: fc.constantFrom('create', 'update', 'delete', 'upsert', 1),
    fields: fieldsish,
    hlc: intish,
    baseVersion: intish,
    seq: intish,
    extra: fc.anything(),
  },
  { requiredKeys: ['id', 'clientId', 'clientSeq', 'collection', 'entityId', 'op', 'hlc'] },
);
/** Mostly valid actions, each key occasionally swapped for a wrong one, so the fast path is exercised at its edges. */
const validAction = fc.record({
  id: fc.constant(null).map(() => uuidv7()),
  clientId: fc.constant(CLIENT),
  clientSeq: fc.integer({ min: 1, max: 1000 }),
  collection: fc.constantFrom('notes', 'accounts', '_a1'),
  entityId: fc.string({ minLength: 1, maxLength: 8 }),
  op: fc.constantFrom('create', 'update'),
  fields: fc.dictionary(fc.string({ minLength: 1, maxLength: 6 }), fc.jsonValue({ maxDepth: 3 }), {
    minKeys: 1,
    maxKeys: 4,
  }),
  hlc: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
});
const nearValidAction = fc
  .tuple(
    validAction,
    actionish,
    fc.constantFrom(
      'none',
      'none',
      'none',
      'none',
      'none',
      'none',
      'none',
      'none',
      'none',
      'none',
      'id',
      'clientId',
      'clientSeq',
      'collection',
      'entityId',
      'op',
      'fields',
      'hlc',
      'baseVersion',
      'seq',
      'extra',
    ),
  )
  .map(([good, bad, key]) => {
    if (key === 'none' || !(key in bad)) return good;
    return { ...good, [key]: (bad as Record<string, unknown>)[key] };
  });
const requestish = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      clientId: fc.constant(CLIENT),
      actions: fc.array(nearValidAction, { minLength: 1, maxLength: 3 }),
    }),
  },
  fc.record({ clientId: uuidish, actions: fc.array(actionish, { maxLength: 3 }) }),
  fc.record(
    { clientId: uuidish, actions: fc.array(actionish, { maxLength: 2 }), more: fc.anything() },
    { requiredKeys: ['clientId', 'actions'] },
  ),
  fc.anything(),
);

/**
 * The fast-path property: whatever `surely` accepts, `schema` accepts too and
 * returns unchanged; both sides (accepted, refused by zod) are exercised.
 */
function agreesWithZod(
  inputs: fc.Arbitrary<unknown>,
  schema: { safeParse(raw: unknown): { success: boolean; data?: unknown } },
  surely: (raw: unknown) => boolean,
): void {
  let accepted = 0;
  let refusedByZod = 0;
  fc.assert(
    fc.property(inputs, (raw) => {
      const parsed = schema.safeParse(raw);
      if (!parsed.success) refusedByZod++;
      if (!surely(raw)) return;
      accepted++;
      expect(parsed.success).toBe(true);
      expect(parsed.data).toEqual(raw);
    }),
    params,
  );
  expect(accepted).toBeGreaterThan(params.numRuns / 10);
  expect(refusedByZod).toBeGreaterThan(params.numRuns / 10);
}

describe('surelyValidPushRequest', () => {
  it('never accepts what pushRequestSchema refuses, and accepts exactly what zod would return', () => {
    agreesWithZod(requestish, pushRequestSchema, surelyValidPushRequest);
  });

  it('takes the fast path for ordinary requests (so it is worth having)', () => {
    const base = {
      id: uuidv7(),
      clientId: CLIENT,
      clientSeq: 1,
      collection: 'notes',
      entityId: 'n1',
      hlc: 7_000_000_000_000_000,
    };
    const ordinary = {
      clientId: CLIENT,
      actions: [
        { ...base, op: 'create', fields: { title: 'a', tags: ['x', 1, null], meta: { deep: { er: true } } } },
        { ...base, id: uuidv7(), clientSeq: 2, op: 'update', fields: { title: 'b' }, baseVersion: 1 },
        { ...base, id: uuidv7(), clientSeq: 3, op: 'delete' },
        { ...base, id: uuidv7(), clientSeq: 4, op: 'create' },
      ],
    };
    expect(surelyValidPushRequest(ordinary)).toBe(true);
    expect(pushRequestSchema.safeParse(ordinary).success).toBe(true);
  });

  it.each([
    ['an update without fields', { op: 'update' }],
    ['a delete with fields', { op: 'delete', fields: {} }],
    ['an unknown key', { op: 'create', color: 'red' }],
    ['a v4 action id', { op: 'create', id: '01890a5d-ac96-474b-bcce-b302099a8057' }],
    ['an unsafe clientSeq', { op: 'create', clientSeq: 2 ** 53 }],
  ])('leaves %s to zod, which refuses it', (_name, patch) => {
    const action = {
      id: uuidv7(),
      clientId: CLIENT,
      clientSeq: 1,
      collection: 'notes',
      entityId: 'n',
      hlc: 1,
      ...patch,
    };
    const raw = { clientId: CLIENT, actions: [action] };
    expect(surelyValidPushRequest(raw)).toBe(false);
    expect(pushRequestSchema.safeParse(raw).success).toBe(false);
  });
});

/** Stored actions as a pull page carries them: mostly valid with a seq, some near misses, some without one. */
const storedAction = fc
  .tuple(nearValidAction, fc.integer({ min: 1, max: 10_000 }), fc.constantFrom('seq', 'seq', 'seq', 'seq', 'keep'))
  .map(([a, seq, how]) => (how === 'seq' ? { ...a, seq } : a));
const replyish = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record(
      {
        actions: fc.array(storedAction, { maxLength: 3 }),
        next: fc.nat(),
        more: fc.boolean(),
        resetRequired: fc.boolean(),
      },
      { requiredKeys: ['actions', 'next', 'more'] },
    ),
  },
  fc.record(
    { actions: fc.array(actionish, { maxLength: 2 }), next: intish, more: jsonish, resetRequired: jsonish, x: jsonish },
    { requiredKeys: ['actions'] },
  ),
  fc.anything(),
);

describe('surelyValidPullReply', () => {
  it('never accepts what pullReplySchema refuses, and accepts exactly what zod would return', () => {
    agreesWithZod(replyish, pullReplySchema, surelyValidPullReply);
  });

  it("leaves a stored action without its seq, and a page of another client's bad uuid, to zod", () => {
    const a = {
      id: uuidv7(),
      clientId: CLIENT,
      clientSeq: 1,
      collection: 'notes',
      entityId: 'n',
      op: 'create',
      hlc: 1,
    };
    const ok = { actions: [{ ...a, seq: 1 }], next: 1, more: false };
    expect(surelyValidPullReply(ok)).toBe(true);
    for (const bad of [
      { ...ok, actions: [a] },
      { ...ok, actions: [{ ...a, clientId: '', seq: 1 }] }, // found by the property: '' once passed as "known"
      {
        ...ok,
        actions: [
          { ...a, seq: 1 },
          { ...a, id: uuidv7(), seq: 2, clientId: 'not-a-uuid' },
        ],
      },
      { ...ok, next: -1 },
      { ...ok, more: 'no' },
      { ...ok, actions: [{ ...a, entityId: 'x\udc00', seq: 1 }] }, // a lone surrogate: SQLite cannot keep it
    ]) {
      expect(surelyValidPullReply(bad)).toBe(false);
      expect(pullReplySchema.safeParse(bad).success).toBe(false);
    }
  });
});

const changeish = fc.record(
  {
    collection: fc.oneof(
      fc.constant('notes'),
      fc.constant('_a1'),
      fc.constant('9bad'),
      fc.constant('x'.repeat(65)),
      fc.string(),
    ),
    id: fc.oneof(
      fc.constant('n1'),
      fc.constant(''),
      fc.constant('x'.repeat(257)),
      fc.string({ maxLength: 6 }),
      fc.constant('\ud800'),
      fc.integer(),
    ),
    op: fc.constantFrom('create', 'update', 'delete', 'delete', 'upsert', 1),
    fields: fc.oneof(
      fieldsish,
      fieldsish,
      validAction.map((a) => a.fields),
    ),
    baseVersion: intish,
    eventId: fc.oneof(
      fc.string({ maxLength: 8 }),
      fc.constant(''),
      fc.constant('e'.repeat(129)),
      fc.constant('e\udfff'),
      fc.integer(),
    ),
    extra: fc.anything(),
  },
  { requiredKeys: [] },
);

const validChange = fc.record(
  {
    collection: fc.constantFrom('notes', '_a1'),
    id: fc.string({ minLength: 1, maxLength: 6 }),
    op: fc.constantFrom('create', 'update'),
    fields: validAction.map((a) => a.fields),
    baseVersion: fc.nat(),
    eventId: fc.string({ minLength: 1, maxLength: 8 }),
  },
  { requiredKeys: ['collection', 'id', 'op', 'fields'] },
);
/** Mostly valid change events, each key occasionally swapped for a wrong one (or removed, or a delete). */
const nearValidChange = fc
  .tuple(
    validChange,
    changeish,
    fc.constantFrom(
      'none',
      'none',
      'none',
      'none',
      'collection',
      'id',
      'op',
      'fields',
      'baseVersion',
      'eventId',
      'extra',
    ),
  )
  .map(([good, bad, key]) => {
    if (key === 'none' || !(key in bad)) return good;
    return { ...good, [key]: (bad as Record<string, unknown>)[key] };
  });

describe('surelyValidChangeEvent', () => {
  it('never accepts what changeEventSchema refuses, and accepts exactly what zod would return', () => {
    agreesWithZod(
      fc.oneof({ weight: 6, arbitrary: nearValidChange }, changeish, fc.anything()),
      changeEventSchema,
      surelyValidChangeEvent,
    );
  });

  it('takes the fast path for ordinary change events', () => {
    for (const ev of [
      { collection: 'notes', id: 'n1', op: 'create', fields: { title: 'a', tags: ['x'] } },
      { collection: 'notes', id: 'n1', op: 'update', fields: { title: 'b' }, baseVersion: 2, eventId: 'e-1' },
      { collection: 'notes', id: 'n1', op: 'delete' },
    ]) {
      expect(surelyValidChangeEvent(ev)).toBe(true);
      expect(changeEventSchema.safeParse(ev).success).toBe(true);
    }
  });
});
