/**
 * Turns one raw bus message into a ChangeEvent or a dead-letter reason. The
 * limits mirror the API's, so nothing the server would refuse for good is
 * queued and retried forever.
 */
import {
  DEFAULT_LIMITS,
  ErrorCode,
  changeEventSchema,
  decodeWith,
  surelyValidChangeEvent,
  type ChangeEvent,
  type ErrorCode as ErrorCodeType,
} from '@ferry/contracts';

export interface ChangeLimits {
  readonly maxEventBytes: number;
  readonly maxFieldsPerAction: number;
  readonly maxFieldValueBytes: number;
}

export const DEFAULT_CHANGE_LIMITS: ChangeLimits = {
  maxEventBytes: 512 * 1024,
  maxFieldsPerAction: DEFAULT_LIMITS.maxFieldsPerAction,
  maxFieldValueBytes: DEFAULT_LIMITS.maxFieldValueBytes,
};

export type ChangeVerdict = { ok: true; event: ChangeEvent } | { ok: false; code: ErrorCodeType; reason: string };

export function validateChange(
  data: Uint8Array,
  limits: ChangeLimits,
  knownCollections: ReadonlySet<string> | null,
): ChangeVerdict {
  if (data.byteLength > limits.maxEventBytes) {
    return {
      ok: false,
      code: ErrorCode.TooLarge,
      reason: `changes: (root): ${data.byteLength} bytes, the limit is ${limits.maxEventBytes}`,
    };
  }
  const parsed = decodeWith(changeEventSchema, data, 'changes', surelyValidChangeEvent);
  if (!parsed.ok) return { ok: false, code: ErrorCode.Invalid, reason: parsed.message };
  const event = parsed.value;
  if (knownCollections !== null && !knownCollections.has(event.collection)) {
    return {
      ok: false,
      code: ErrorCode.Invalid,
      reason: `changes: collection: "${event.collection}" is not configured`,
    };
  }
  const fields = event.fields;
  if (fields !== undefined) {
    const names = Object.keys(fields);
    if (names.length > limits.maxFieldsPerAction) {
      return {
        ok: false,
        code: ErrorCode.TooLarge,
        reason: `changes: fields: ${names.length} fields, the limit is ${limits.maxFieldsPerAction}`,
      };
    }
    for (const name of names) {
      const bytes = Buffer.byteLength(JSON.stringify(fields[name]));
      if (bytes > limits.maxFieldValueBytes) {
        return {
          ok: false,
          code: ErrorCode.TooLarge,
          reason: `changes: fields.${name}: ${bytes} bytes, the limit is ${limits.maxFieldValueBytes}`,
        };
      }
    }
  }
  return { ok: true, event };
}
