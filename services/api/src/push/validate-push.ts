/**
 * Turns the bytes of a push request into a trusted `PushRequest`, or into the
 * one error that answers the whole request (invalid, too_large, clock_drift).
 * Cheap checks run first, so an oversize batch is refused before zod walks it.
 */
import { Buffer } from 'node:buffer';
import {
  ErrorCode,
  FerryError,
  parseWith,
  pushRequestSchema,
  surelyValidPushRequest,
  type JsonValue,
  type Limits,
  type PushRequest,
} from '@ferry/contracts';
import { checkDrift } from '@ferry/domain';
import { locateRawActions, rawActionsOf, splitPushRequest, type PushPieces, type RawActions } from './raw-actions.js';

export type Checked<T> = { ok: true; value: T } | { ok: false; error: FerryError };
/** A valid push request, with the text of its actions where it can be stored as received. */
export type CheckedPush = { ok: true; value: PushRequest; raw: RawActions | null } | { ok: false; error: FerryError };

const decoder = new TextDecoder('utf-8', { fatal: true });

/** JSON bytes → value; malformed UTF-8 or JSON is `invalid`. */
export function decodeJson(data: Uint8Array): Checked<unknown> {
  try {
    return { ok: true, value: JSON.parse(decoder.decode(data)) as unknown };
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    return { ok: false, error: new FerryError(ErrorCode.Invalid, `(root): not valid JSON (${reason})`) };
  }
}

/**
 * Requests from this size on are parsed in pieces of at most PIECE_BYTES: one
 * string of a whole request would be a V8 large object, allocated on fresh
 * pages each time (on the VMs measured here ~1.2 ms of page faults for 300 KB,
 * about 4 µs per action), where pieces stay in the young generation.
 */
const PIECEWISE_FROM = 96 * 1024;
const PIECE_BYTES = 64 * 1024;

/**
 * decodeJson for a push request: the same value (or the same error), parsed
 * piece by piece when the request is large and shaped as one
 * (`splitPushRequest`); anything else, and any piece that does not parse, is
 * decided by decodeJson over the whole text.
 */
export type DecodedPush = { ok: true; value: unknown; pieces: PushPieces | null } | { ok: false; error: FerryError };

export function decodePushJson(data: Uint8Array, pieceBytes = PIECE_BYTES, from = PIECEWISE_FROM): DecodedPush {
  const pieces = data.length >= from ? splitPushRequest(data) : null;
  if (pieces !== null) {
    try {
      const clientId: unknown = JSON.parse(decoder.decode(data.subarray(...pieces.clientId)));
      const actions: unknown[] = [];
      const ranges = pieces.actions;
      for (let i = 0; i < ranges.length;) {
        // Consecutive actions up to pieceBytes as one array: the bytes between them are `,` and whitespace.
        const start = (ranges[i] as readonly [number, number])[0];
        let j = i;
        while (j + 1 < ranges.length && (ranges[j + 1] as readonly [number, number])[1] - start <= pieceBytes) j++;
        const end = (ranges[j] as readonly [number, number])[1];
        const part = JSON.parse(`[${decoder.decode(data.subarray(start, end))}]`) as unknown[];
        for (const a of part) actions.push(a);
        i = j + 1;
      }
      const value: Record<string, unknown> = {};
      for (const key of pieces.order) value[key] = key === 'clientId' ? clientId : actions;
      return { ok: true, value, pieces };
    } catch {
      // Not valid after all: the whole text decides, and words the error.
    }
  }
  const whole = decodeJson(data);
  return whole.ok ? { ...whole, pieces: null } : whole;
}

export function checkPushRequest(data: Uint8Array, limits: Limits, now: number): CheckedPush {
  if (data.length > limits.maxBatchBytes) {
    return tooLarge(`(root): request is ${data.length} bytes, the limit is ${limits.maxBatchBytes} (maxBatchBytes)`);
  }
  const json = decodePushJson(data);
  if (!json.ok) return { ok: false, error: json.error };
  const shape = json.value as { actions?: unknown } | null;
  if (
    typeof shape === 'object' &&
    shape !== null &&
    Array.isArray(shape.actions) &&
    shape.actions.length > limits.maxActionsPerBatch
  ) {
    return tooLarge(
      `actions: ${shape.actions.length} actions, the limit is ${limits.maxActionsPerBatch} (maxActionsPerBatch)`,
    );
  }
  let request: PushRequest;
  let raw: RawActions | null = null;
  if (surelyValidPushRequest(json.value)) {
    request = json.value;
    // zod returns what JSON.parse made unchanged here, so the text says the same.
    raw =
      json.pieces === null ? locateRawActions(data, request.actions) : rawActionsOf(data, json.pieces, request.actions);
  } else {
    // zod decides anything the fast path is unsure of, and names the offending field.
    const parsed = parseWith(pushRequestSchema, json.value);
    if (!parsed.ok) return { ok: false, error: new FerryError(ErrorCode.Invalid, parsed.message) };
    request = parsed.value;
  }
  const problem = checkActions(request, limits, now);
  return problem === null ? { ok: true, value: request, raw } : { ok: false, error: problem };
}

function checkActions(request: PushRequest, limits: Limits, now: number): FerryError | null {
  for (let i = 0; i < request.actions.length; i++) {
    const action = request.actions[i];
    if (action === undefined) continue;
    if (action.clientId !== request.clientId) {
      return new FerryError(ErrorCode.Invalid, `actions[${i}].clientId: must equal the request's clientId`);
    }
    if (action.fields !== undefined) {
      let count = 0;
      for (const name in action.fields) {
        count++;
        const bytes = valueBytesOver(action.fields[name] as JsonValue, limits.maxFieldValueBytes);
        if (bytes !== null) {
          return new FerryError(
            ErrorCode.TooLarge,
            `actions[${i}].fields.${name}: value is ${bytes} bytes, the limit is ${limits.maxFieldValueBytes} (maxFieldValueBytes)`,
          );
        }
      }
      if (count > limits.maxFieldsPerAction) {
        return new FerryError(
          ErrorCode.TooLarge,
          `actions[${i}].fields: ${count} fields, the limit is ${limits.maxFieldsPerAction} (maxFieldsPerAction)`,
        );
      }
    }
    const drift = checkDrift(action.hlc, now, limits.maxClockDriftMs);
    if (!drift.ok) {
      return new FerryError(
        ErrorCode.ClockDrift,
        `actions[${i}].hlc: ${drift.aheadMs} ms ahead of server time, the limit is ${limits.maxClockDriftMs} ms (maxClockDriftMs)`,
      );
    }
  }
  return null;
}

/**
 * The value's size as UTF-8 JSON when it exceeds `max`, else null. A string
 * whose worst case (6 bytes per UTF-16 unit, as `\uXXXX`) fits is not encoded.
 */
function valueBytesOver(value: JsonValue, max: number): number | null {
  if (value === null || typeof value === 'number' || typeof value === 'boolean') return null;
  if (typeof value === 'string' && value.length * 6 + 2 <= max) return null;
  const bytes = Buffer.byteLength(JSON.stringify(value), 'utf8');
  return bytes > max ? bytes : null;
}

function tooLarge(message: string): { ok: false; error: FerryError } {
  return { ok: false, error: new FerryError(ErrorCode.TooLarge, message) };
}
