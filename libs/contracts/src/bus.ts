/**
 * Local bus messages between an app and its daemon (DESIGN §5): ChangeEvent in,
 * StateBatch out, and the status/query request/reply pairs.
 */
import { z } from 'zod';
import { opSchema, versionSchema } from './action.js';
import { entityStateSchema } from './entity.js';
import {
  WELL_FORMED_MESSAGE,
  collectionNameSchema,
  entityIdSchema,
  fieldsSchema,
  hlcSchema,
  isWellFormedText,
  seqSchema,
} from './ids.js';

export const MAX_EVENT_ID_LENGTH = 128;

export const changeEventSchema = z
  .strictObject({
    collection: collectionNameSchema,
    id: entityIdSchema,
    op: opSchema,
    fields: fieldsSchema.optional(),
    baseVersion: versionSchema.optional(),
    /** Set by the app to make its own retries idempotent. */
    eventId: z
      .string()
      .min(1, 'must not be empty')
      .max(MAX_EVENT_ID_LENGTH)
      .refine(isWellFormedText, WELL_FORMED_MESSAGE)
      .optional(),
  })
  .superRefine((value, ctx) => {
    if (value.op === 'delete' && value.fields !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['fields'], message: 'must be absent on a delete' });
    }
    if (value.op === 'update' && (value.fields === undefined || Object.keys(value.fields).length === 0)) {
      ctx.addIssue({ code: 'custom', path: ['fields'], message: 'an update must set at least one field' });
    }
  });
export type ChangeEvent = z.infer<typeof changeEventSchema>;

export const stateBatchSchema = z.strictObject({
  entities: z.array(entityStateSchema),
  cursor: seqSchema,
});
export type StateBatch = z.infer<typeof stateBatchSchema>;

export const queryRequestSchema = z.strictObject({
  collection: collectionNameSchema,
  id: entityIdSchema.optional(),
});
export type QueryRequest = z.infer<typeof queryRequestSchema>;

export const queryReplySchema = z.strictObject({
  entities: z.array(entityStateSchema),
});
export type QueryReply = z.infer<typeof queryReplySchema>;

export const statusRequestSchema = z.strictObject({});
export type StatusRequest = z.infer<typeof statusRequestSchema>;

export const statusReplySchema = z.strictObject({
  online: z.boolean(),
  pending: z.number().int().nonnegative(),
  cursor: seqSchema,
  /** Epoch millis of the last completed push or pull, null before the first. */
  lastSyncAt: z.number().int().nonnegative().nullable(),
  /** How far behind the server head this device is, in seqs. */
  lag: z.number().int().nonnegative(),
  /** The device's HLC at the time of the reply, for drift diagnosis. */
  hlc: hlcSchema.optional(),
});
export type StatusReply = z.infer<typeof statusReplySchema>;
