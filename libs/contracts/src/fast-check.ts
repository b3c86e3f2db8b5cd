/**
 * Hand-written fast paths for the wire messages that carry many actions or
 * come one per change: push requests, pull replies and change events. zod's
 * object, record and `z.json()` walkers cost ~6 µs per action, most of a
 * push's budget. Each check may answer "not sure" for valid input (then zod
 * decides and words the error), but it must never pass what zod refuses:
 * property tests (test/fast-check.property.test.ts) hold it to that. Leaf
 * checks (uuids) still call the schemas themselves, so their rules cannot drift.
 */
import { actionSchema } from './action.js';
import { MAX_EVENT_ID_LENGTH, changeEventSchema, type ChangeEvent } from './bus.js';
import {
  actionIdSchema,
  clientIdSchema,
  COLLECTION_PATTERN,
  MAX_ENTITY_ID_LENGTH,
  MAX_FIELD_NAME_LENGTH,
  isWellFormedText,
} from './ids.js';
import type { PullReply, PushRequest } from './upstream.js';

// Derived from the schema, so a new field cannot be forgotten here.
const ACTION_KEYS = new Set(Object.keys(actionSchema.shape));
const REQUIRED_KEYS = Object.values(actionSchema.shape).filter((field) => !field.safeParse(undefined).success).length;
const MAX_JSON_DEPTH = 32;

/** True only when `raw` certainly satisfies `pushRequestSchema` and zod would return it unchanged. */
export function surelyValidPushRequest(raw: unknown): raw is PushRequest {
  if (!isPlainObject(raw)) return false;
  let keys = 0;
  for (const key in raw) {
    if (key !== 'clientId' && key !== 'actions') return false;
    keys++;
  }
  if (keys !== 2) return false;
  const { clientId, actions } = raw as { clientId: unknown; actions: unknown };
  if (!Array.isArray(actions) || actions.length === 0) return false;
  if (typeof clientId !== 'string' || !clientIdSchema.safeParse(clientId).success) return false;
  // Actions of one push share their clientId: check that uuid once, not per action.
  for (const action of actions) {
    if (!surelyValidAction(action, clientId, false)) return false;
  }
  return true;
}

/** True only when `raw` certainly satisfies `pullReplySchema` and zod would return it unchanged. */
export function surelyValidPullReply(raw: unknown): raw is PullReply {
  if (!isPlainObject(raw)) return false;
  let keys = 0;
  for (const key in raw) {
    if (key !== 'actions' && key !== 'next' && key !== 'more' && key !== 'resetRequired') return false;
    keys++;
  }
  const { actions, next, more, resetRequired } = raw;
  if (keys !== (resetRequired === undefined ? 3 : 4)) return false;
  if (!Array.isArray(actions) || !isIntAtLeast(next, 0) || typeof more !== 'boolean') return false;
  if (resetRequired !== undefined && typeof resetRequired !== 'boolean') return false;
  // A page holds runs of one client's actions: its uuid is checked once per run.
  let known: string | undefined;
  for (const action of actions) {
    if (!surelyValidAction(action, known, true)) return false;
    known = (action as { clientId: string }).clientId;
  }
  return true;
}

const CHANGE_KEYS = new Set(Object.keys(changeEventSchema.shape));

/** True only when `raw` certainly satisfies `changeEventSchema` and zod would return it unchanged. */
export function surelyValidChangeEvent(raw: unknown): raw is ChangeEvent {
  if (!isPlainObject(raw)) return false;
  for (const key in raw) if (!CHANGE_KEYS.has(key)) return false;
  const { collection, id, op, fields, baseVersion, eventId } = raw;
  if (typeof collection !== 'string' || !COLLECTION_PATTERN.test(collection)) return false;
  if (!isEntityId(id)) return false;
  if (baseVersion !== undefined && !isIntAtLeast(baseVersion, 0)) return false;
  if (
    eventId !== undefined &&
    (typeof eventId !== 'string' ||
      eventId.length === 0 ||
      eventId.length > MAX_EVENT_ID_LENGTH ||
      !isWellFormedText(eventId))
  )
    return false;
  return surelyValidOpAndFields(op, fields);
}

/** `seqRequired`: a stored action (pull replies) must have its seq. */
function surelyValidAction(a: unknown, knownClientId: string | undefined, seqRequired: boolean): boolean {
  if (!isPlainObject(a)) return false;
  let present = 0;
  for (const key in a) {
    if (!ACTION_KEYS.has(key)) return false;
    present++;
  }
  const { id, clientId, clientSeq, collection, entityId, op, fields, hlc, baseVersion, seq } = a;
  const optional = (fields !== undefined ? 1 : 0) + (baseVersion !== undefined ? 1 : 0) + (seq !== undefined ? 1 : 0);
  if (present !== REQUIRED_KEYS + optional) return false; // a required key is missing
  if (typeof id !== 'string' || !actionIdSchema.safeParse(id).success) return false;
  if (clientId !== knownClientId && (typeof clientId !== 'string' || !clientIdSchema.safeParse(clientId).success))
    return false;
  if (!isIntAtLeast(clientSeq, 1) || !isIntAtLeast(hlc, 0)) return false;
  if (baseVersion !== undefined && !isIntAtLeast(baseVersion, 0)) return false;
  if (seq === undefined ? seqRequired : !isIntAtLeast(seq, 1)) return false;
  if (typeof collection !== 'string' || !COLLECTION_PATTERN.test(collection)) return false;
  if (!isEntityId(entityId)) return false;
  return surelyValidOpAndFields(op, fields);
}

/** The op with its fields: none on a delete, at least one on an update, JSON values only. */
function surelyValidOpAndFields(op: unknown, fields: unknown): boolean {
  if (op === 'delete') return fields === undefined;
  if (op !== 'create' && op !== 'update') return false;
  if (fields === undefined) return op === 'create';
  if (!isPlainObject(fields)) return false;
  let count = 0;
  for (const name in fields) {
    if (name.length === 0 || name.length > MAX_FIELD_NAME_LENGTH || name === '__proto__') return false;
    if (!isJsonValue(fields[name], 0)) return false;
    count++;
  }
  return op === 'create' || count > 0;
}

function isEntityId(id: unknown): boolean {
  return typeof id === 'string' && id.length > 0 && id.length <= MAX_ENTITY_ID_LENGTH && isWellFormedText(id);
}

/** Safe integers only, as zod's `.int()` requires. */
function isIntAtLeast(value: unknown, min: number): boolean {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= min;
}

/** What JSON.parse makes (and a null-prototype object, which zod treats the same). */
function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function isJsonValue(value: unknown, depth: number): boolean {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return true;
    case 'number':
      return Number.isFinite(value);
    case 'object': {
      if (value === null) return true;
      if (depth >= MAX_JSON_DEPTH) return false;
      if (Array.isArray(value)) {
        for (const item of value) if (!isJsonValue(item, depth + 1)) return false;
        return true;
      }
      if (!isPlainObject(value)) return false;
      for (const key in value) {
        if (key === '__proto__' || !isJsonValue(value[key], depth + 1)) return false;
      }
      return true;
    }
    default:
      return false;
  }
}
