// Small helpers shared by the domain tests.
import type { Action, EntityState } from '@ferry/contracts';
import { entityKey, type Materializer } from '../src/index.js';

export function stateOf(m: Materializer): Map<string, EntityState> {
  const out = new Map<string, EntityState>();
  for (const e of m.entities()) out.set(entityKey(e.collection, e.id), e);
  return out;
}

/** Sorted plain object, so toEqual reports differences readably. */
export function plain(states: Map<string, EntityState>): Record<string, EntityState> {
  return Object.fromEntries([...states.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** Plain (unbranded) fields for writing actions by hand in tests. */
export interface ActionDraft {
  op: Action['op'];
  hlc: number;
  id?: string;
  clientId?: string;
  clientSeq?: number;
  collection?: string;
  entityId?: string;
  fields?: Record<string, unknown>;
  baseVersion?: number;
  seq?: number;
}

let counter = 0;
/** A hand-written action for unit tests; ids are uuidv7-shaped and unique. */
export function act(partial: ActionDraft): Action {
  counter++;
  return {
    id: `0190b000-0000-7000-8000-${counter.toString(16).padStart(12, '0')}`,
    clientId: '0190a000-0000-7000-8000-00000000000a',
    clientSeq: counter,
    collection: 'notes',
    entityId: '45',
    ...partial,
  } as Action;
}
