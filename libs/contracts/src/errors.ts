/**
 * Stable error codes and the wire error reply `{error: {code, message}}`.
 * Across a process boundary, match on `code`, never on a class.
 */
import { z } from 'zod';

export const ErrorCode = {
  /** Malformed JSON or a schema violation; the message names the field. */
  Invalid: 'invalid',
  /** A batch, action or field value over a documented limit. */
  TooLarge: 'too_large',
  /** An action's hlc is further ahead of server time than `maxClockDriftMs`. */
  ClockDrift: 'clock_drift',
  /** A client skipped a clientSeq: the server holds n, was sent more than n + 1. */
  ClientSeqGap: 'client_seq_gap',
  /** The caller may not act on this tenant or subject. */
  Forbidden: 'forbidden',
  /** The store or a dependency is temporarily unavailable; retry with backoff. */
  Unavailable: 'unavailable',
  /** A bug on the answering side; the request may be retried. */
  Internal: 'internal',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];
export const ERROR_CODES = Object.values(ErrorCode) as [ErrorCode, ...ErrorCode[]];

export const errorCodeSchema = z.enum(ERROR_CODES);

export const errorBodySchema = z.strictObject({
  code: errorCodeSchema,
  message: z.string(),
});
export type ErrorBody = z.infer<typeof errorBodySchema>;

export const errorReplySchema = z.strictObject({ error: errorBodySchema });
export type ErrorReply = z.infer<typeof errorReplySchema>;

/** Codes a client retries with backoff; every other code is permanent. */
export function isTransientCode(code: ErrorCode): boolean {
  return code === ErrorCode.Unavailable || code === ErrorCode.Internal;
}

/** Thrown inside a process; serialised as an ErrorReply at the boundary. */
export class FerryError extends Error {
  override readonly name = 'FerryError';
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }

  toReply(): ErrorReply {
    return { error: { code: this.code, message: this.message } };
  }
}

export function errorReply(code: ErrorCode, message: string): ErrorReply {
  return { error: { code, message } };
}
