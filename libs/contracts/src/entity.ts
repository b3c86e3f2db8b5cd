/**
 * Reconciled entity state as the app sees it (StateBatch, query replies), and
 * the full mergeable record (with per-field stamps) that snapshots carry so a
 * new device bootstraps into exactly the state the server holds.
 */
import { z } from 'zod';
import { versionSchema } from './action.js';
import {
  actionIdSchema,
  clientIdSchema,
  collectionNameSchema,
  entityIdSchema,
  fieldNameSchema,
  fieldsSchema,
  hlcSchema,
  jsonValueSchema,
  seqSchema,
} from './ids.js';

export const entityStateSchema = z.strictObject({
  collection: collectionNameSchema,
  id: entityIdSchema,
  fields: fieldsSchema,
  deleted: z.boolean(),
  version: versionSchema,
  hlc: hlcSchema,
});
export type EntityState = z.infer<typeof entityStateSchema>;

/** The position of a write in the total order `(hlc, clientId, id)`. */
export const stampSchema = z.strictObject({
  hlc: hlcSchema,
  clientId: clientIdSchema,
  id: actionIdSchema,
});
export type Stamp = z.infer<typeof stampSchema>;

/** A field value with the stamp of the write that set it. */
export const cellSchema = z.strictObject({
  value: jsonValueSchema,
  stamp: stampSchema,
});
export type Cell = z.infer<typeof cellSchema>;

/**
 * The mergeable form of an entity (see libs/domain `materializer.ts`):
 * `held` keeps, per field, the latest update that is earlier than every known
 * create, so a create that arrives late can still let it take effect.
 * `seq` is the highest server seq folded into the record (server side only).
 */
export const entityRecordSchema = z.strictObject({
  collection: collectionNameSchema,
  id: entityIdSchema,
  fields: z.record(fieldNameSchema, cellSchema),
  held: z.record(fieldNameSchema, cellSchema),
  created: stampSchema.nullable(),
  deleted: stampSchema.nullable(),
  version: versionSchema,
  hlc: hlcSchema,
  seq: seqSchema,
});
export type EntityRecord = z.infer<typeof entityRecordSchema>;
