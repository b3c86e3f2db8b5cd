/**
 * Conflict records (DESIGN §4): what was overwritten or refused, by what, and
 * how it was resolved. Published as `conflict` sync events and kept in a log.
 */
import { z } from 'zod';
import {
  actionIdSchema,
  clientIdSchema,
  collectionNameSchema,
  entityIdSchema,
  hlcSchema,
  jsonValueSchema,
} from './ids.js';

export const ConflictResolution = {
  /** Field-level last-writer-wins picked the later write in the total order. */
  LastWriterWins: 'lww',
  /** A delete tombstoned the entity; the other write's fields are gone. */
  DeleteWins: 'delete-wins',
  /** The server refused a pending local action (reject-stale or invalid). */
  Rejected: 'rejected',
  /** A custom merge function produced the result. */
  Custom: 'custom',
  /**
   * Two devices minted the same key for different rows (an attached SQLite table
   * with INTEGER PRIMARY KEY): reported, and not merged into the app's table.
   */
  IdCollision: 'id-collision',
} as const;
export type ConflictResolution = (typeof ConflictResolution)[keyof typeof ConflictResolution];

export const conflictSideSchema = z.strictObject({
  actionId: actionIdSchema,
  clientId: clientIdSchema,
  hlc: hlcSchema,
  /** The field value this side wrote; absent for a delete or a whole-entity loss. */
  value: jsonValueSchema.optional(),
  deleted: z.boolean().optional(),
});
export type ConflictSide = z.infer<typeof conflictSideSchema>;

export const conflictRecordSchema = z.strictObject({
  collection: collectionNameSchema,
  entityId: entityIdSchema,
  /** The field fought over; null when the whole entity was at stake (delete, rejection). */
  field: z.string().nullable(),
  /** The side that prevails; null when a rejection leaves no local winner. */
  winner: conflictSideSchema.nullable(),
  loser: conflictSideSchema,
  resolution: z.enum([
    ConflictResolution.LastWriterWins,
    ConflictResolution.DeleteWins,
    ConflictResolution.Rejected,
    ConflictResolution.Custom,
    ConflictResolution.IdCollision,
  ]),
  reason: z.string().optional(),
});
export type ConflictRecord = z.infer<typeof conflictRecordSchema>;
