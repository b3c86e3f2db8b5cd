/**
 * The clientSeq rules every store applies inside its push transaction: the
 * next expected clientSeq is accepted, anything at or below the high-water
 * mark is a retry, anything further ahead is a gap. Pure; no storage here.
 */
import { ErrorCode, FerryError, type Action } from '@ferry/contracts';

export type ClientSeqClass = 'next' | 'seen' | 'gap';

/** O(1): the store keeps only the highest clientSeq it has settled per client. */
export function classifyClientSeq(high: number, clientSeq: number): ClientSeqClass {
  if (clientSeq <= high) return 'seen';
  return clientSeq === high + 1 ? 'next' : 'gap';
}

/**
 * A gap fails the whole batch: storing actions past a hole would break the
 * proof that a client's actions are stored in the order they were made.
 */
export function clientSeqGapError(index: number, action: Action, high: number): FerryError {
  return new FerryError(
    ErrorCode.ClientSeqGap,
    `actions[${index}].clientSeq: ${action.clientSeq} skips ahead; the server holds ${high} for client ${action.clientId}, expected ${high + 1}`,
  );
}

/** The reason given when a clientSeq is retried with a different action id (a client bug). */
export function clientSeqReusedReason(clientSeq: number, storedId: string): string {
  return `clientSeq ${clientSeq} was already used by action ${storedId}`;
}

/**
 * The action with its seq, as the store folds it: one object shape for every
 * action (cheaper than a spread, whose shape follows the client's key order).
 * Every key of `actionSchema` is copied (test/push-rules.test.ts holds it to that).
 */
export function withSeq(a: Action, seq: number): Action {
  return {
    id: a.id,
    clientId: a.clientId,
    clientSeq: a.clientSeq,
    collection: a.collection,
    entityId: a.entityId,
    op: a.op,
    fields: a.fields,
    hlc: a.hlc,
    baseVersion: a.baseVersion,
    seq,
  };
}
