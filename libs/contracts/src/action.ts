/**
 * The action: one entry of the WAL and one unit of the upstream protocol
 * (DESIGN §3). `seq` is assigned by the server and absent while pending.
 */
import { z } from 'zod';
import {
  actionIdSchema,
  clientIdSchema,
  clientSeqSchema,
  collectionNameSchema,
  entityIdSchema,
  fieldsSchema,
  hlcSchema,
  seqSchema,
} from './ids.js';

export const OPS = ['create', 'update', 'delete'] as const;
export const opSchema = z.enum(OPS);
export type Op = z.infer<typeof opSchema>;

export const versionSchema = z.number().int('must be an integer').nonnegative('must not be negative');

/** create/update carry fields (update at least one); delete carries none. */
function checkFieldsForOp(
  value: { op: Op; fields?: Record<string, unknown> | undefined },
  ctx: z.core.$RefinementCtx,
): void {
  if (value.op === 'delete' && value.fields !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['fields'], message: 'must be absent on a delete' });
  }
  if (value.op === 'update' && (value.fields === undefined || Object.keys(value.fields).length === 0)) {
    ctx.addIssue({ code: 'custom', path: ['fields'], message: 'an update must set at least one field' });
  }
}

const actionShape = {
  id: actionIdSchema,
  clientId: clientIdSchema,
  clientSeq: clientSeqSchema,
  collection: collectionNameSchema,
  entityId: entityIdSchema,
  op: opSchema,
  fields: fieldsSchema.optional(),
  hlc: hlcSchema,
  baseVersion: versionSchema.optional(),
  seq: seqSchema.min(1, 'must be at least 1').optional(),
};

export const actionSchema = z.strictObject(actionShape).superRefine(checkFieldsForOp);
export type Action = z.infer<typeof actionSchema>;

/** An action as the server stores and returns it: always with its seq. */
export const storedActionSchema = z
  .strictObject({
    ...actionShape,
    seq: seqSchema.min(1, 'must be at least 1'),
  })
  .superRefine(checkFieldsForOp);
export type StoredAction = z.infer<typeof storedActionSchema>;
