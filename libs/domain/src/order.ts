/**
 * The deterministic total order of actions: `(hlc, clientId, id)`, compared
 * as numbers then as UTF-16 code-unit strings, identically on every replica.
 */

/** The position of a write in the total order. */
export interface StampRef {
  readonly hlc: number;
  readonly clientId: string;
  readonly id: string;
}

/** Negative when a comes first, positive when b does, 0 for the same action. */
export function compareStamps(a: StampRef, b: StampRef): number {
  if (a.hlc !== b.hlc) return a.hlc < b.hlc ? -1 : 1;
  if (a.clientId !== b.clientId) return a.clientId < b.clientId ? -1 : 1;
  if (a.id !== b.id) return a.id < b.id ? -1 : 1;
  return 0;
}

/** A sorted copy in total order; the input is left alone. */
export function sortByTotalOrder<T extends StampRef>(items: readonly T[]): T[] {
  return [...items].sort(compareStamps);
}

export function stampOf(action: StampRef): StampRef {
  return { hlc: action.hlc, clientId: action.clientId, id: action.id };
}
