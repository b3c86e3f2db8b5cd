/**
 * The upstream protocol between daemon and API (DESIGN §6): push, pull,
 * snapshot request/reply pairs, the feed broadcast, and the default limits.
 * Every reply may instead be an ErrorReply.
 */
import { z } from 'zod';
import { actionSchema, storedActionSchema } from './action.js';
import { entityRecordSchema, entityStateSchema } from './entity.js';
import { errorReplySchema } from './errors.js';
import { actionIdSchema, clientIdSchema, seqSchema } from './ids.js';

/** Defaults the API enforces; documented in docs/protocol.md. */
export const DEFAULT_LIMITS = {
  maxActionsPerBatch: 5000,
  /** Below NATS's default max_payload (1 MiB) with room for headers. */
  maxBatchBytes: 960 * 1024,
  maxFieldsPerAction: 256,
  maxFieldValueBytes: 64 * 1024,
  maxPullLimit: 5000,
  maxSnapshotLimit: 5000,
  maxClockDriftMs: 60_000,
} as const;
export type Limits = { -readonly [K in keyof typeof DEFAULT_LIMITS]: number };

export const pushRequestSchema = z.strictObject({
  clientId: clientIdSchema,
  actions: z.array(actionSchema).min(1, 'must hold at least one action'),
});
export type PushRequest = z.infer<typeof pushRequestSchema>;

export const PushStatus = { Accepted: 'accepted', Duplicate: 'duplicate', Rejected: 'rejected' } as const;
export type PushStatus = (typeof PushStatus)[keyof typeof PushStatus];

export const pushResultSchema = z.strictObject({
  id: actionIdSchema,
  status: z.enum([PushStatus.Accepted, PushStatus.Duplicate, PushStatus.Rejected]),
  seq: seqSchema.optional(),
  reason: z.string().optional(),
  /** On a reject-stale rejection: the entity as the server holds it (null if absent). */
  current: entityStateSchema.nullable().optional(),
});
export type PushResult = z.infer<typeof pushResultSchema>;

export const pushReplySchema = z.strictObject({
  results: z.array(pushResultSchema),
  headSeq: seqSchema,
});
export type PushReply = z.infer<typeof pushReplySchema>;

export const pullRequestSchema = z.strictObject({
  since: seqSchema,
  limit: z.number().int().min(1, 'must be at least 1'),
  /** Lets the server record this client's cursor for retention (additive to DESIGN §6). */
  clientId: clientIdSchema.optional(),
});
export type PullRequest = z.infer<typeof pullRequestSchema>;

export const pullReplySchema = z.strictObject({
  actions: z.array(storedActionSchema),
  /** The cursor to pull from next: the seq of the last action returned, or `since`. */
  next: seqSchema,
  more: z.boolean(),
  /** `since` is below the retention horizon: bootstrap from a snapshot. */
  resetRequired: z.boolean().optional(),
});
export type PullReply = z.infer<typeof pullReplySchema>;

export const snapshotRequestSchema = z.strictObject({
  /** Opaque page token from the previous reply; absent for the first page. */
  after: z.string().max(1024).optional(),
  limit: z.number().int().min(1, 'must be at least 1'),
});
export type SnapshotRequest = z.infer<typeof snapshotRequestSchema>;

export const snapshotReplySchema = z.strictObject({
  entities: z.array(entityRecordSchema),
  /** The head seq when the snapshot began; pull from here once the last page is in. */
  seq: seqSchema,
  /** Page token for the next request; null on the last page. */
  after: z.string().nullable(),
  more: z.boolean(),
});
export type SnapshotReply = z.infer<typeof snapshotReplySchema>;

export const feedMessageSchema = z.strictObject({ headSeq: seqSchema });
export type FeedMessage = z.infer<typeof feedMessageSchema>;

export const pushResponseSchema = z.union([pushReplySchema, errorReplySchema]);
export const pullResponseSchema = z.union([pullReplySchema, errorReplySchema]);
export const snapshotResponseSchema = z.union([snapshotReplySchema, errorReplySchema]);
