/**
 * Sync events (DESIGN §7), published on `ferry.<app>.events`: a typed map of
 * everything the daemon does, so tests and tools await events instead of sleeping.
 */
import { z } from 'zod';
import { errorCodeSchema } from './errors.js';
import { conflictRecordSchema } from './conflict.js';
import { actionIdSchema, collectionNameSchema, entityIdSchema, seqSchema } from './ids.js';

const at = z.number().int().nonnegative();

export const syncEventSchema = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('capture'),
    at,
    actionId: actionIdSchema,
    collection: collectionNameSchema,
    entityId: entityIdSchema,
    op: z.enum(['create', 'update', 'delete']),
    eventId: z.string().optional(),
  }),
  z.strictObject({ type: z.literal('push-started'), at, count: z.number().int().positive(), bytes: z.number().int() }),
  z.strictObject({
    type: z.literal('push-acked'),
    at,
    accepted: z.number().int().nonnegative(),
    duplicate: z.number().int().nonnegative(),
    rejected: z.number().int().nonnegative(),
    headSeq: seqSchema,
    latencyMs: z.number().nonnegative(),
  }),
  z.strictObject({
    type: z.literal('push-failed'),
    at,
    count: z.number().int().nonnegative(),
    code: errorCodeSchema,
    message: z.string(),
    retryInMs: z.number().nonnegative(),
  }),
  z.strictObject({
    type: z.literal('pull-received'),
    at,
    count: z.number().int().nonnegative(),
    since: seqSchema,
    next: seqSchema,
    more: z.boolean(),
  }),
  z.strictObject({
    type: z.literal('applied'),
    at,
    count: z.number().int().nonnegative(),
    entities: z.number().int().nonnegative(),
    cursor: seqSchema,
  }),
  z.strictObject({
    type: z.literal('bootstrap-started'),
    at,
    /** new-device: cursor 0; reset-required: the server purged past the cursor; resumed: after a restart. */
    reason: z.enum(['new-device', 'reset-required', 'resumed']),
    cursor: seqSchema,
  }),
  z.strictObject({
    type: z.literal('snapshot-applied'),
    at,
    entities: z.number().int().nonnegative(),
    /** The head the snapshot was taken at; pulling resumes from it after the last page. */
    seq: seqSchema,
    more: z.boolean(),
  }),
  z.strictObject({ type: z.literal('conflict'), at, conflict: conflictRecordSchema }),
  z.strictObject({
    type: z.literal('rejected'),
    at,
    actionId: actionIdSchema,
    collection: collectionNameSchema,
    entityId: entityIdSchema,
    reason: z.string(),
  }),
  z.strictObject({ type: z.literal('online'), at }),
  z.strictObject({ type: z.literal('offline'), at, reason: z.string() }),
  z.strictObject({ type: z.literal('error'), at, code: errorCodeSchema, message: z.string() }),
  z.strictObject({
    type: z.literal('dead-lettered'),
    at,
    code: errorCodeSchema,
    reason: z.string(),
    /** The JetStream sequence of the captured message, or the outbox row id. */
    sourceRef: z.string(),
  }),
]);
export type SyncEvent = z.infer<typeof syncEventSchema>;
export type SyncEventType = SyncEvent['type'];
/** The event of one type, e.g. `SyncEventOf<'conflict'>`. */
export type SyncEventOf<T extends SyncEventType> = Extract<SyncEvent, { type: T }>;
