/**
 * The daemon's HTTP side (README, "Observe"): the JSON of `GET /status` and of
 * the status page's server-sent events. Read by dashboards and tests; not part
 * of the bus or upstream protocol (PROTOCOL_VERSION does not cover it).
 */
import { z } from 'zod';
import { statusReplySchema } from './bus.js';
import { conflictRecordSchema } from './conflict.js';
import { entityStateSchema } from './entity.js';
import { syncEventSchema } from './sync-event.js';

const count = z.number().int().nonnegative();

/** Totals since the daemon started: actions, except conflicts and rejections (records). */
export const daemonTotalsSchema = z.strictObject({
  captured: count,
  pushed: count,
  pulled: count,
  applied: count,
  conflicts: count,
  rejected: count,
  deadLettered: count,
  errors: count,
});
export type DaemonTotals = z.infer<typeof daemonTotalsSchema>;

/** `GET /status` → `status`, and the page's `status` event. */
export const daemonStatusSchema = statusReplySchema.extend({
  app: z.string(),
  tenant: z.string(),
  clientId: z.string(),
  /** Epoch millis when the daemon's HTTP side started. */
  startedAt: z.number().int(),
  /** Epoch millis of this picture. */
  now: z.number().int(),
  /** The newest server head this daemon knows of (cursor + lag). */
  head: count,
  /** Seconds since the daemon first saw it was behind `head`; 0 when caught up. */
  lagSeconds: z.number().nonnegative(),
  /** Round trip of the last acknowledged push, ms; null before the first. */
  lastPushLatencyMs: z.number().nonnegative().nullable(),
  totals: daemonTotalsSchema,
});
export type DaemonStatus = z.infer<typeof daemonStatusSchema>;

export const loggedConflictSchema = z.strictObject({ at: z.number().int(), conflict: conflictRecordSchema });
export type LoggedConflict = z.infer<typeof loggedConflictSchema>;

export const changedEntitySchema = z.strictObject({ at: z.number().int(), entity: entityStateSchema });
export type ChangedEntity = z.infer<typeof changedEntitySchema>;

/** `GET /status` and the page's first (`snapshot`) event: the picture and what led to it, newest first. */
export const statusSnapshotSchema = z.strictObject({
  status: daemonStatusSchema,
  events: z.array(syncEventSchema),
  conflicts: z.array(loggedConflictSchema),
  changes: z.array(changedEntitySchema),
});
export type StatusSnapshot = z.infer<typeof statusSnapshotSchema>;
