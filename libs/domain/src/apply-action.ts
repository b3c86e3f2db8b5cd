/**
 * One entry point to fold an action into a record under its collection's
 * policy, for the materializer and for stores that keep records themselves.
 */
import type { Action, EntityState } from '@ferry/contracts';
import { applyCustom } from './custom-merge.js';
import { applyLww, type ClashSink, type EntityRec } from './entity-record.js';
import type { CollectionPolicy } from './policy.js';

export function applyAction(rec: EntityRec, action: Action, policy: CollectionPolicy, sink?: ClashSink): void {
  if (policy.kind === 'custom') applyCustom(rec, action, policy.merge);
  else applyLww(rec, action, sink);
}

export type StaleCheck = { ok: true } | { ok: false; reason: string; current: EntityState | null };

/**
 * reject-stale: the action must name the version it was made against. An
 * absent baseVersion counts as 0, which only a never-seen entity has.
 */
export function checkBaseVersion(
  rec: EntityRec | null,
  action: Action,
  view: (r: EntityRec) => EntityState | null,
): StaleCheck {
  const expected = action.baseVersion ?? 0;
  const actual = rec === null ? 0 : rec.version;
  if (expected === actual) return { ok: true };
  return {
    ok: false,
    reason: `stale: baseVersion ${expected}, current version ${actual}`,
    current: rec === null ? null : view(rec),
  };
}
