/**
 * The oracle: `reconcile(base, actions)` sorts by the total order and replays.
 * Deliberately naive and obviously right; the incremental materializer must
 * always agree with it (property tests), and services never call it per sync.
 */
import type { Action, EntityState, Fields } from '@ferry/contracts';
import { compareStamps } from './order.js';
import { INITIAL_CUSTOM_STATE } from './custom-merge.js';
import { PolicyBook, type CustomState } from './policy.js';

interface Replay {
  collection: string;
  id: string;
  exists: boolean;
  deleted: boolean;
  fields: Fields;
  version: number;
  hlc: number;
  custom: CustomState | null;
}

export function entityKey(collection: string, id: string): string {
  return `${collection}\u0000${id}`;
}

/**
 * Replays `actions` (duplicates by id ignored) in total order over `base`,
 * whose entities are taken to precede every action. Returns the visible
 * entities: created ones, and tombstones.
 */
export function reconcile(
  base: Iterable<EntityState>,
  actions: readonly Action[],
  policies: PolicyBook = new PolicyBook(),
): Map<string, EntityState> {
  const states = new Map<string, Replay>();
  for (const e of base) {
    states.set(entityKey(e.collection, e.id), {
      collection: e.collection,
      id: e.id,
      exists: !e.deleted,
      deleted: e.deleted,
      fields: { ...e.fields },
      version: e.version,
      hlc: e.hlc,
      custom: null,
    });
  }
  const seen = new Set<string>();
  const unique = actions.filter((a) => (seen.has(a.id) ? false : (seen.add(a.id), true)));
  unique.sort(compareStamps);

  for (const a of unique) {
    const key = entityKey(a.collection, a.entityId);
    let s = states.get(key);
    if (s === undefined) {
      s = {
        collection: a.collection,
        id: a.entityId,
        exists: false,
        deleted: false,
        fields: {},
        version: 0,
        hlc: 0,
        custom: null,
      };
      states.set(key, s);
    }
    s.version += 1;
    s.hlc = Math.max(s.hlc, a.hlc);
    const policy = policies.for(a.collection);
    if (policy.kind === 'custom') {
      s.custom = policy.merge(s.custom ?? INITIAL_CUSTOM_STATE, a);
      continue;
    }
    if (s.deleted) continue; // delete wins: nothing after it counts
    if (a.op === 'delete') {
      s.deleted = true;
      s.fields = {};
    } else if (a.op === 'create') {
      s.exists = true;
      s.fields = { ...s.fields, ...a.fields };
    } else if (s.exists) {
      s.fields = { ...s.fields, ...a.fields }; // updates never create
    }
  }

  const out = new Map<string, EntityState>();
  for (const [key, s] of states) {
    const exists = s.custom === null ? s.exists : s.custom.exists;
    const deleted = s.custom === null ? s.deleted : s.custom.deleted;
    if (!exists && !deleted) continue;
    out.set(key, {
      collection: s.collection,
      id: s.id,
      fields: s.custom === null ? s.fields : { ...s.custom.fields },
      deleted,
      version: s.version,
      hlc: s.hlc,
    } as EntityState);
  }
  return out;
}
