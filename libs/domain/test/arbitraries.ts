// fast-check generators for actions on a small id space, with seed and run
// count taken from the environment so a failure can be replayed:
//   FC_SEED=123 FC_RUNS=5000 npx vitest run --project domain
import fc from 'fast-check';
import type { Action } from '@ferry/contracts';

export const fcParams = (): fc.Parameters<unknown> => {
  const runs = Number(process.env.FC_RUNS ?? 1000);
  const seed = process.env.FC_SEED === undefined ? undefined : Number(process.env.FC_SEED);
  return seed === undefined ? { numRuns: runs } : { numRuns: runs, seed };
};

/** Client ids sorted so their lexical order is stable in reports. */
export const CLIENTS = [
  '0190a000-0000-7000-8000-00000000000a',
  '0190a000-0000-7000-8000-00000000000b',
  '0190a000-0000-7000-8000-00000000000c',
  '0190a000-0000-7000-8000-00000000000d',
  '0190a000-0000-7000-8000-00000000000e',
] as const;

const COLLECTIONS = ['notes', 'tasks'] as const;
const ENTITY_IDS = ['1', '2', '3'] as const;
// 'constructor' on purpose: field bags must not see inherited properties.
const FIELDS = ['title', 'body', 'done', 'constructor'] as const;

interface Draft {
  client: number;
  collection: (typeof COLLECTIONS)[number];
  entityId: (typeof ENTITY_IDS)[number];
  op: Action['op'];
  fields: Record<string, string | number | boolean | null>;
  /** Small range on purpose: equal hlcs across clients are common. */
  hlc: number;
}

const valueArb = fc.oneof(
  fc.constantFrom('a', 'b', 'c'),
  fc.integer({ min: 0, max: 3 }),
  fc.boolean(),
  fc.constant(null),
);

const draftArb = (clients: number): fc.Arbitrary<Draft> =>
  fc.record({
    client: fc.integer({ min: 0, max: clients - 1 }),
    collection: fc.constantFrom(...COLLECTIONS),
    entityId: fc.constantFrom(...ENTITY_IDS),
    op: fc.constantFrom<Action['op']>('create', 'update', 'update', 'update', 'delete'),
    fields: fc.dictionary(fc.constantFrom(...FIELDS), valueArb, { minKeys: 1, maxKeys: 3 }),
    hlc: fc.integer({ min: 1, max: 12 }),
  });

/** Turns drafts into valid actions: unique uuidv7-shaped ids, clientSeq 1, 2, 3 … per client. */
export function materializeDrafts(drafts: readonly Draft[]): Action[] {
  const nextSeq = new Map<number, number>();
  return drafts.map((d, i) => {
    const clientSeq = (nextSeq.get(d.client) ?? 0) + 1;
    nextSeq.set(d.client, clientSeq);
    const action: Record<string, unknown> = {
      id: `0190a000-0000-7000-8000-${i.toString(16).padStart(12, '0')}`,
      clientId: CLIENTS[d.client],
      clientSeq,
      collection: d.collection,
      entityId: d.entityId,
      op: d.op,
      hlc: d.hlc,
    };
    if (d.op !== 'delete') action.fields = d.fields;
    return action as Action;
  });
}

/** 2–5 clients, up to `max` actions. */
export const actionsArb = (max = 40): fc.Arbitrary<Action[]> =>
  fc
    .integer({ min: 2, max: 5 })
    .chain((clients) => fc.array(draftArb(clients), { minLength: 1, maxLength: max }))
    .map(materializeDrafts);

/** A delivery: a permutation of the actions with duplicates, split into batches. */
export const deliveryArb = (actions: readonly Action[]): fc.Arbitrary<Action[][]> =>
  fc
    .tuple(
      fc.shuffledSubarray([...actions], { minLength: actions.length, maxLength: actions.length }),
      fc.array(fc.nat({ max: Math.max(0, actions.length - 1) }), { maxLength: 10 }),
      fc.array(fc.nat(), { maxLength: 8 }),
      fc.array(fc.nat(), { maxLength: 6 }),
    )
    .map(([order, dupIdx, dupAt, cuts]) => {
      const seq = [...order];
      dupIdx.forEach((src, k) => {
        const a = actions[src];
        if (a !== undefined) seq.splice((dupAt[k] ?? 0) % (seq.length + 1), 0, a);
      });
      const points = [...new Set(cuts.map((c) => c % (seq.length + 1)))].sort((x, y) => x - y);
      const batches: Action[][] = [];
      let prev = 0;
      for (const p of points) {
        batches.push(seq.slice(prev, p));
        prev = p;
      }
      batches.push(seq.slice(prev));
      return batches;
    });
