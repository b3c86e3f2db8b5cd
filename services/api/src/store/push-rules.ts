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
