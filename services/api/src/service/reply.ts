/**
 * Encodes replies. Every reply is a JSON string; stored actions and records
 * are spliced in as the JSON text the store kept, never parsed and re-serialised.
 */
import { ErrorCode, FerryError, errorReply, isTransientCode, type ErrorCode as Code } from '@ferry/contracts';

export function encodeError(code: Code, message: string): string {
  return JSON.stringify(errorReply(code, message));
}

/** A FerryError keeps its code; anything else is a bug on our side and says only that. */
export function encodeFailure(err: unknown): string {
  if (err instanceof FerryError) return JSON.stringify(err.toReply());
  return encodeError(ErrorCode.Internal, 'internal error; the request may be retried');
}

/** A client's mistake is news (info); our own trouble is a warning; an unknown throw is a bug. */
export function failureLevel(err: unknown): 'info' | 'warn' | 'error' {
  if (!(err instanceof FerryError)) return 'error';
  return isTransientCode(err.code) ? 'warn' : 'info';
}

/** A client's mistake is logged as its code and message; anything else with its stack. */
export function logFields(err: unknown): Record<string, unknown> {
  if (err instanceof FerryError && !isTransientCode(err.code)) return { code: err.code, reason: err.message };
  return { err };
}
