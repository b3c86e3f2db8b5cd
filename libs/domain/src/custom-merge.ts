/**
 * Custom merges: the embedder's function is folded over the entity's actions
 * in total order. An in-order arrival folds one step; an out-of-order one
 * re-folds that entity alone (its history is kept for this reason only).
 */
import type { Action } from '@ferry/contracts';
import type { EntityRec } from './entity-record.js';
import { compareStamps } from './order.js';
import type { CustomMerge, CustomState } from './policy.js';

export const INITIAL_CUSTOM_STATE: CustomState = Object.freeze({
  exists: false,
  deleted: false,
  fields: Object.freeze({}),
});

/** Where `action` goes in the sorted history (binary search). */
function insertionIndex(history: readonly Action[], action: Action): number {
  let lo = 0;
  let hi = history.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareStamps(history[mid] as Action, action) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export function applyCustom(rec: EntityRec, action: Action, merge: CustomMerge): void {
  const part = (rec.custom ??= { history: [], state: INITIAL_CUSTOM_STATE });
  rec.version += 1;
  if (action.hlc > rec.hlc) rec.hlc = action.hlc;
  const seq = action.seq ?? 0;
  if (seq > rec.seq) rec.seq = seq;
  const at = insertionIndex(part.history, action);
  part.history.splice(at, 0, action);
  if (at === part.history.length - 1) {
    part.state = merge(part.state, action);
    return;
  }
  let state = INITIAL_CUSTOM_STATE;
  for (const a of part.history) state = merge(state, a);
  part.state = state;
}
